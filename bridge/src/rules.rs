//! The rules a shard header must follow that need no execution: checked by
//! the beacon when it accepts a header and by every validator before it
//! re-executes a block. Bisection over `c_0..c_n` only sees execution, so
//! everything else a header claims (its place in the chain, its time, its
//! fees, its body) is judged here, by the one function both sides call.

use serde::Serialize;

use crate::{ChainSpec, Decode, DecodeError, Encode, Hash, ShardBlock, ShardHeader, decode_list};

/// How many slots after its own a header may still be included by the
/// beacon. The beacon refuses a header of slot `t` once its current slot
/// is past `t + INCLUSION_SLOTS`; a validator abandons its unaccepted block
/// of slot `t` only after seeing a beacon block of a later slot than that.
/// Both sides apply [`may_include`], so a block the beacon accepts is never
/// one its proposer threw away.
pub const INCLUSION_SLOTS: u64 = 8;

/// How many slots ahead of a node's own clock a block or header may be
/// (clock skew between machines): nothing further ahead is accepted.
pub const CLOCK_SKEW_SLOTS: u64 = 1;

/// Whether a header of slot `header_slot` may still be included when the
/// beacon's clock reads `current` (see [`INCLUSION_SLOTS`]).
pub fn may_include(header_slot: u64, current: u64) -> bool {
    header_slot <= current.saturating_add(CLOCK_SKEW_SLOTS)
        && current <= header_slot.saturating_add(INCLUSION_SLOTS)
}

/// Whether the inclusion window of a header of slot `header_slot` has
/// closed by beacon slot `beacon_slot`: a beacon block of a later slot than
/// `header_slot + INCLUSION_SLOTS` that does not include it means it never
/// will be, so its proposer and every validator holding it abandon it.
pub fn inclusion_expired(header_slot: u64, beacon_slot: u64) -> bool {
    beacon_slot > header_slot.saturating_add(INCLUSION_SLOTS)
}

/// Whether a block of `slot` is too far ahead of a node whose clock reads `current`.
pub fn is_future(slot: u64, current: u64) -> bool {
    slot > current.saturating_add(CLOCK_SKEW_SLOTS)
}

/// The EIP-1559 base fee of the child of `parent` (block 1 pays the
/// genesis header's base fee). Same arithmetic as Ethereum's (elasticity 2,
/// max change 1/8), on values a peer may have chosen, so it never overflows.
pub fn next_base_fee(parent: &ShardHeader) -> u64 {
    if parent.height == 0 {
        return parent.base_fee;
    }
    let target = parent.gas_limit / 2;
    if target == 0 || parent.gas_used == target {
        return parent.base_fee;
    }
    let base = u128::from(parent.base_fee);
    if parent.gas_used > target {
        let delta = base * u128::from(parent.gas_used - target) / (u128::from(target) * 8);
        parent.base_fee.saturating_add(u64::try_from(delta.max(1)).unwrap_or(u64::MAX))
    } else {
        let delta = base * u128::from(target - parent.gas_used) / (u128::from(target) * 8);
        parent.base_fee.saturating_sub(u64::try_from(delta).unwrap_or(u64::MAX))
    }
}

/// A header that breaks a rule checkable without execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum HeaderFault {
    /// Height is not the parent's plus one.
    #[error("height {height}, parent is at {parent_height}")]
    Height {
        /// The header's height.
        height: u64,
        /// The parent's.
        parent_height: u64,
    },
    /// `parent_hash` is not the parent's hash.
    #[error("parent hash {claimed}, parent is {parent}")]
    ParentHash {
        /// What the header names.
        claimed: Hash,
        /// The parent's hash.
        parent: Hash,
    },
    /// `pre_state_root` is not the parent's `post_state_root`.
    #[error("pre_state_root {claimed}, parent's post_state_root is {parent}")]
    PreStateRoot {
        /// What the header claims.
        claimed: Hash,
        /// The parent's post-state root.
        parent: Hash,
    },
    /// The slot is not after the parent's.
    #[error("slot {slot} is not after the parent's slot {parent_slot}")]
    SlotNotAfterParent {
        /// The header's slot.
        slot: u64,
        /// The parent's.
        parent_slot: u64,
    },
    /// The timestamp is earlier than the parent's (timestamps never go
    /// back; with sub-second slots consecutive blocks may share one).
    #[error("timestamp {timestamp} is before the parent's {parent}")]
    TimestampBeforeParent {
        /// The header's timestamp.
        timestamp: u64,
        /// The parent's.
        parent: u64,
    },
    /// The timestamp is not the second the header's slot starts in.
    #[error("timestamp {claimed}, slot {slot} starts in second {expected}")]
    Timestamp {
        /// The header's slot.
        slot: u64,
        /// What it claims.
        claimed: u64,
        /// The slot's start.
        expected: u64,
    },
    /// The base fee does not follow EIP-1559 from the parent.
    #[error("base fee {claimed}, EIP-1559 from the parent gives {expected}")]
    BaseFee {
        /// What it claims.
        claimed: u64,
        /// What the rule gives.
        expected: u64,
    },
    /// `trace_root` is not the commitment of the header's own post-state,
    /// outbox and receipts roots and gas used.
    #[error("trace_root {claimed}, the header's roots commit to {expected}")]
    TraceRoot {
        /// What it claims.
        claimed: Hash,
        /// The commitment of its roots.
        expected: Hash,
    },
    /// The gas limit differs from the parent's (it is fixed per network).
    #[error("gas limit {claimed}, the shard's is {expected}")]
    GasLimit {
        /// What it claims.
        claimed: u64,
        /// The parent's.
        expected: u64,
    },
    /// More gas used than the limit allows.
    #[error("gas used {gas_used} exceeds the gas limit {gas_limit}")]
    GasUsed {
        /// Claimed gas used.
        gas_used: u64,
        /// The limit.
        gas_limit: u64,
    },
    /// The body does not hash to the header's `items_root`.
    #[error("body of {items} items has items root {computed}, header claims {claimed}")]
    ItemsRoot {
        /// Items in the body.
        items: usize,
        /// The body's root.
        computed: Hash,
        /// The header's.
        claimed: Hash,
    },
}

impl HeaderFault {
    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            HeaderFault::Height { .. } => "height",
            HeaderFault::ParentHash { .. } => "parent_hash",
            HeaderFault::PreStateRoot { .. } => "pre_state_root",
            HeaderFault::SlotNotAfterParent { .. } => "slot_not_after_parent",
            HeaderFault::TimestampBeforeParent { .. } => "timestamp_before_parent",
            HeaderFault::Timestamp { .. } => "timestamp",
            HeaderFault::BaseFee { .. } => "base_fee",
            HeaderFault::GasLimit { .. } => "gas_limit",
            HeaderFault::GasUsed { .. } => "gas_used",
            HeaderFault::TraceRoot { .. } => "trace_root",
            HeaderFault::ItemsRoot { .. } => "items_root",
        }
    }
}

/// Checks `header` as the child of `parent` (whose hash is `parent_hash`)
/// under `spec`: everything about a header that execution does not decide.
pub fn check_header(
    spec: &ChainSpec,
    parent: &ShardHeader,
    parent_hash: &Hash,
    header: &ShardHeader,
) -> Result<(), HeaderFault> {
    if Some(header.height) != parent.height.checked_add(1) {
        return Err(HeaderFault::Height { height: header.height, parent_height: parent.height });
    }
    if header.parent_hash != *parent_hash {
        return Err(HeaderFault::ParentHash { claimed: header.parent_hash, parent: *parent_hash });
    }
    if header.pre_state_root != parent.post_state_root {
        return Err(HeaderFault::PreStateRoot {
            claimed: header.pre_state_root,
            parent: parent.post_state_root,
        });
    }
    if header.beacon_slot <= parent.beacon_slot {
        return Err(HeaderFault::SlotNotAfterParent {
            slot: header.beacon_slot,
            parent_slot: parent.beacon_slot,
        });
    }
    // the timestamp rule (README, "Block timestamps"): the unix second the
    // header's slot starts in, so never before the parent's, and strictly
    // after it whenever slots last a second or more
    if header.timestamp < parent.timestamp {
        return Err(HeaderFault::TimestampBeforeParent {
            timestamp: header.timestamp,
            parent: parent.timestamp,
        });
    }
    let expected = spec.slot_timestamp(header.beacon_slot);
    if header.timestamp != expected {
        return Err(HeaderFault::Timestamp { slot: header.beacon_slot, claimed: header.timestamp, expected });
    }
    let expected = next_base_fee(parent);
    if header.base_fee != expected {
        return Err(HeaderFault::BaseFee { claimed: header.base_fee, expected });
    }
    if header.gas_limit != parent.gas_limit {
        return Err(HeaderFault::GasLimit { claimed: header.gas_limit, expected: parent.gas_limit });
    }
    if header.gas_used > header.gas_limit {
        return Err(HeaderFault::GasUsed { gas_used: header.gas_used, gas_limit: header.gas_limit });
    }
    // the trace's last commitment is the header's execution fields: a game
    // over the trace then decides every one of them
    let last = header.last_commitment();
    if header.trace_root != last.hash() {
        return Err(HeaderFault::TraceRoot { claimed: header.trace_root, expected: last.hash() });
    }
    Ok(())
}

/// Checks that a block's body is the one its signed header commits to.
pub fn check_body(block: &ShardBlock) -> Result<(), HeaderFault> {
    let computed = block.items_root();
    let claimed = block.header.header.items_root;
    if computed != claimed {
        return Err(HeaderFault::ItemsRoot { items: block.inbox.len() + block.txs.len(), computed, claimed });
    }
    Ok(())
}

/// The fields execution decides where `claimed` and `computed` differ, in
/// header order, with both values as text.
fn execution_differences(
    claimed: &ShardHeader,
    computed: &ShardHeader,
) -> Vec<(&'static str, String, String)> {
    let roots = [
        ("post_state_root", claimed.post_state_root, computed.post_state_root),
        ("outbox_root", claimed.outbox_root, computed.outbox_root),
        ("receipts_root", claimed.receipts_root, computed.receipts_root),
        ("trace_root", claimed.trace_root, computed.trace_root),
    ];
    let mut out: Vec<(&'static str, String, String)> =
        roots.iter().filter(|(_, a, b)| a != b).map(|(f, a, b)| (*f, a.to_string(), b.to_string())).collect();
    if claimed.gas_used != computed.gas_used {
        out.push(("gas_used", claimed.gas_used.to_string(), computed.gas_used.to_string()));
    }
    out
}

/// Evidence that a block re-executes to other results than its header
/// claims: the block exactly as signed (its body matches its header) and
/// the header this node's own execution produced. Stored in the canonical
/// encoding (validators serve it as `optishard_getMismatchEvidence`); the
/// dispute game opens from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MismatchEvidence {
    /// The signed block, body bound to its header.
    pub block: ShardBlock,
    /// The header re-execution computed from the same parent and body
    /// (every field the execution decides; the rest copied from the block).
    pub computed: ShardHeader,
    /// Fields that differ, in header order.
    pub fields: Vec<Vec<u8>>,
}

impl MismatchEvidence {
    /// Builds the evidence, listing the fields where the two headers differ.
    pub fn new(block: ShardBlock, computed: ShardHeader) -> Self {
        let mut fields: Vec<Vec<u8>> = execution_differences(&block.header.header, &computed)
            .iter()
            .map(|d| d.0.as_bytes().to_vec())
            .collect();
        if fields.is_empty() {
            // the block failed to execute at all (an invalid item)
            fields.push(b"execution".to_vec());
        }
        MismatchEvidence { block, computed, fields }
    }

    /// The first differing field with the claimed and computed values as
    /// text (`execution` when the block failed to execute at all).
    pub fn first_difference(&self) -> (String, String, String) {
        match execution_differences(&self.block.header.header, &self.computed).into_iter().next() {
            Some((field, claimed, computed)) => (field.to_string(), claimed, computed),
            None => ("execution".into(), "a valid block".into(), "an invalid item".into()),
        }
    }

    /// The disputed header's hash (evidence is deduplicated by it).
    pub fn header_hash(&self) -> Hash {
        self.block.header.header.hash()
    }

    /// The differing fields as text.
    pub fn field_names(&self) -> Vec<String> {
        self.fields.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect()
    }
}

impl Encode for MismatchEvidence {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.block.encode_to(out);
        self.computed.encode_to(out);
        crate::encode_list(&self.fields, out);
    }
}

impl Decode for MismatchEvidence {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(MismatchEvidence {
            block: ShardBlock::decode(input)?,
            computed: ShardHeader::decode(input)?,
            fields: decode_list(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    /// Breaks one rule of a valid header.
    type Breaker = fn(&mut ShardHeader);

    use super::*;
    use crate::{ShardId, SignedHeader, ValidatorKey, decode_exact};

    fn spec() -> ChainSpec {
        ChainSpec {
            genesis_time_ms: 1_000_000,
            slot_ms: 500,
            shards: 1,
            chain_id_base: 1,
            seed: Hash::ZERO,
            validators: vec![],
            shard_genesis: vec![ShardHeader {
                base_fee: 1_000_000_000,
                gas_limit: 30_000_000,
                ..Default::default()
            }],
            beacon: Default::default(),
            challenge_window_slots: 16,
            dispute_k: 4,
            game_clock_slots: 0,
            stf_version: crate::STF_VERSION,
            challengers: vec![],
            dispute_stake_gwei: 1,
            slash_reward_percent: 50,
        }
    }

    fn child(spec: &ChainSpec, parent: &ShardHeader, slot: u64) -> ShardHeader {
        let mut h = ShardHeader {
            shard: ShardId(0),
            height: parent.height + 1,
            parent_hash: parent.hash(),
            beacon_slot: slot,
            timestamp: spec.slot_timestamp(slot),
            pre_state_root: parent.post_state_root,
            post_state_root: Hash::of(b"post"),
            base_fee: next_base_fee(parent),
            gas_limit: parent.gas_limit,
            gas_used: 21_000,
            ..Default::default()
        };
        h.trace_root = h.last_commitment().hash();
        h
    }

    #[test]
    fn every_rule_refuses_its_violation() {
        let spec = spec();
        let g = spec.shard_genesis[0].clone();
        let h1 = child(&spec, &g, 3);
        assert_eq!(check_header(&spec, &g, &g.hash(), &h1), Ok(()));
        let h2 = child(&spec, &h1, 4);
        assert_eq!(check_header(&spec, &h1, &h1.hash(), &h2), Ok(()));
        let cases: Vec<(&str, Breaker)> = vec![
            ("height", |h| h.height += 1),
            ("parent_hash", |h| h.parent_hash = Hash::of(b"x")),
            ("pre_state_root", |h| h.pre_state_root = Hash::of(b"x")),
            ("slot_not_after_parent", |h| h.beacon_slot = 3),
            ("timestamp", |h| h.timestamp += 1),
            ("timestamp_before_parent", |h| h.timestamp = 0),
            ("base_fee", |h| h.base_fee += 1),
            ("gas_limit", |h| h.gas_limit += 1),
            ("gas_used", |h| h.gas_used = h.gas_limit + 1),
            ("trace_root", |h| h.post_state_root = Hash::of(b"a root its trace does not end at")),
        ];
        for (rule, break_it) in cases {
            let mut bad = h2.clone();
            break_it(&mut bad);
            let err = check_header(&spec, &h1, &h1.hash(), &bad).unwrap_err();
            assert_eq!(err.label(), rule, "{err}");
        }
    }

    /// The timestamp rule: the second a header's slot starts in. With
    /// 500 ms slots two consecutive blocks share a timestamp and are both
    /// valid; with slots of a second or more timestamps strictly increase.
    #[test]
    fn timestamps_are_the_slots_second_never_decreasing() {
        let mut spec = spec();
        let g = spec.shard_genesis[0].clone();
        // genesis at 1,000,000 ms: slots 0 and 1 start in second 1,000
        let h1 = child(&spec, &g, 1);
        let h2 = child(&spec, &h1, 2);
        assert_eq!((h1.timestamp, h2.timestamp), (1_000, 1_001));
        let h3 = child(&spec, &h2, 3);
        assert_eq!(h3.timestamp, h2.timestamp, "two blocks in one second share it");
        assert_eq!(check_header(&spec, &h2, &h2.hash(), &h3), Ok(()));
        // a proposer may not stamp the next second early, nor the previous one
        for claimed in [h3.timestamp + 1, h3.timestamp - 1] {
            let mut bad = h3.clone();
            bad.timestamp = claimed;
            assert!(check_header(&spec, &h2, &h2.hash(), &bad).is_err(), "{claimed}");
        }
        for slot_ms in [1_000, 1_500, 12_000] {
            spec.slot_ms = slot_ms;
            let times: Vec<u64> = (0..100).map(|s| spec.slot_timestamp(s)).collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]), "slot_ms {slot_ms}: strictly increasing");
        }
    }

    #[test]
    fn base_fee_matches_ethereum_and_never_overflows() {
        let parent = |used: u64, fee: u64| ShardHeader {
            height: 5,
            gas_used: used,
            gas_limit: 30_000_000,
            base_fee: fee,
            ..Default::default()
        };
        assert_eq!(next_base_fee(&parent(15_000_000, 1_000_000_000)), 1_000_000_000);
        assert_eq!(next_base_fee(&parent(30_000_000, 1_000_000_000)), 1_125_000_000);
        assert_eq!(next_base_fee(&parent(0, 1_000_000_000)), 875_000_000);
        assert_eq!(next_base_fee(&parent(15_000_001, 1)), 2, "rises by at least 1");
        assert_eq!(next_base_fee(&parent(u64::MAX, u64::MAX)), u64::MAX);
        let zero_limit =
            ShardHeader { height: 1, gas_limit: 0, gas_used: u64::MAX, base_fee: 9, ..Default::default() };
        assert_eq!(next_base_fee(&zero_limit), 9);
    }

    #[test]
    fn inclusion_window_is_the_same_rule_for_both_sides() {
        assert!(may_include(10, 10));
        assert!(may_include(10, 10 + INCLUSION_SLOTS));
        assert!(!may_include(10, 11 + INCLUSION_SLOTS));
        assert!(may_include(10 + CLOCK_SKEW_SLOTS, 10));
        assert!(!may_include(11 + CLOCK_SKEW_SLOTS, 10));
        assert!(!may_include(u64::MAX, 0) && !may_include(0, u64::MAX));
        assert!(is_future(12, 10) && !is_future(11, 10));
        // the validator abandons exactly when the beacon can no longer include
        for t in [0u64, 5, 100] {
            for u in t..t + 2 * INCLUSION_SLOTS {
                assert_eq!(inclusion_expired(t, u), !may_include(t, u), "slot {t} at beacon slot {u}");
            }
        }
    }

    #[test]
    fn body_binding_and_evidence_round_trip() {
        let key = ValidatorKey::derive(b"k");
        let txs = vec![vec![1u8, 2], vec![3]];
        let mut block =
            ShardBlock { header: SignedHeader::sign(ShardHeader::default(), &key), inbox: vec![], txs };
        assert!(matches!(check_body(&block), Err(HeaderFault::ItemsRoot { items: 2, .. })));
        block.header =
            SignedHeader::sign(ShardHeader { items_root: block.items_root(), ..Default::default() }, &key);
        assert_eq!(check_body(&block), Ok(()));
        let mut tampered = block.clone();
        tampered.txs[1] = vec![4];
        assert!(check_body(&tampered).is_err());
        tampered.txs.pop();
        assert!(check_body(&tampered).is_err(), "the root commits to the item count");

        let computed = ShardHeader { post_state_root: Hash::of(b"other"), ..block.header.header.clone() };
        let ev = MismatchEvidence::new(block.clone(), computed);
        assert_eq!(ev.field_names(), vec!["post_state_root"]);
        assert_eq!(decode_exact::<MismatchEvidence>(&ev.encode()).unwrap(), ev);
        assert_eq!(ev.header_hash(), block.header.header.hash());
    }
}
