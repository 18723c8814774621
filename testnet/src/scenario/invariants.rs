//! What every scenario checks after every slot, on either tier: supply is
//! conserved, each channel's messages are consumed exactly once and in
//! order, nothing discarded becomes final, no honest party is slashed, the
//! validators of a shard agree on every final header, and every accepted
//! header is decided within the spec's bound. A violation stops the run
//! with the slot and the evidence.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use bridge::{Address, Hash, ShardId};
use serde::Serialize;

use crate::Testnet;

/// A broken invariant: which, when, and what shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Violation {
    /// The slot after which it was seen.
    pub slot: u64,
    /// The invariant's name.
    pub invariant: &'static str,
    /// What was seen.
    pub evidence: String,
}

/// The invariants' names, as reports list them.
pub const INVARIANTS: [&str; 6] = [
    "supply conserved",
    "exactly-once delivery per channel",
    "no invalid header final",
    "no honest party slashed",
    "validators agree on final headers",
    "headers decided within the bound",
];

/// The checker's memory between slots.
#[derive(Default)]
pub struct Checker {
    /// Parties never told to lie (validators and standalone challengers).
    honest: BTreeSet<Address>,
    /// Per shard: the final heights checked so far.
    checked_final: BTreeMap<u32, u64>,
    /// Per channel `(src, dst)`: the next nonce a final block may consume.
    next_nonce: BTreeMap<(u32, u32), u64>,
    /// Every message a final block consumed.
    consumed: HashSet<Hash>,
    /// Per shard: the lowest final height no honest validator has shown
    /// holding yet, and the slot it became final at.
    unheld: BTreeMap<u32, (u64, u64)>,
    /// Slots the beacon was down, counted up to each slot (game clocks and
    /// the bound run on live slots).
    down_before: Vec<u64>,
    /// How many times the supply audit could not run (a shard with no
    /// live validator holding its accepted head).
    pub audits_skipped: u64,
}

impl Checker {
    /// A checker for `t`'s network: every validator and challenger honest
    /// until [`Checker::lying`] says otherwise.
    pub fn new(t: &Testnet) -> Checker {
        let spec = t.spec();
        let honest =
            spec.validators.iter().map(|v| v.address).chain(spec.challengers.iter().map(|c| c.address));
        Checker { honest: honest.collect(), down_before: vec![0], ..Default::default() }
    }

    /// `who` was told to lie: it is no longer among the honest.
    pub fn lying(&mut self, who: Address) {
        self.honest.remove(&who);
    }

    /// Every invariant after the slot `t` just ran.
    pub fn check(&mut self, t: &Testnet) -> Result<(), Violation> {
        let slot = t.slot();
        let down = *self.down_before.last().unwrap_or(&0) + u64::from(t.beacon_down());
        while self.down_before.len() as u64 <= slot {
            self.down_before.push(down);
        }
        let fail = |invariant: &'static str, evidence: String| Violation { slot, invariant, evidence };
        // supply: Σ balances + in flight = Σ genesis − Σ fees burned
        match audit_at_beacon_heads(t) {
            Some(audit) if !audit.holds => return Err(fail(INVARIANTS[0], format!("{audit:?}"))),
            Some(_) => {}
            None => self.audits_skipped += 1,
        }
        let bonds = t.beacon().games().1;
        for who in &self.honest {
            if let Some(b) = bonds.parties.get(who)
                && b.slashed > 0
            {
                return Err(fail(INVARIANTS[3], format!("{who} lost {} gwei", b.slashed)));
            }
        }
        // every validator's own final height (what its RPC calls
        // `finalized`) holds the beacon's final header there (chains are
        // hash-linked: the rest below agrees with it)
        for i in 0..t.validator_count() {
            let (shard, who) = t.validator_info(i);
            let Some(node) = t.node(i) else { continue };
            let Some(f) = node.finalized().filter(|f| *f > 0) else { continue };
            let Ok(Some(b)) = node.block(f) else { continue };
            let status = t.beacon().header_status(shard, f).ok().flatten();
            if status.as_ref().is_none_or(|st| st.hash != b.header.header.hash() || st.status != "final") {
                let honest = if self.honest.contains(&who) { "honest" } else { "lying" };
                return Err(fail(
                    INVARIANTS[4],
                    format!(
                        "shard {} height {f}: validator {i} ({honest}) holds {} as final, the beacon {status:?}",
                        shard.0,
                        b.header.header.hash()
                    ),
                ));
            }
        }
        let finalized = t.beacon().finalized();
        let spec = t.spec();
        let bound = spec.decision_bound();
        for (s, fin) in finalized.iter().enumerate() {
            let shard = ShardId(s as u32);
            let from = self.checked_final.get(&shard.0).map_or(1, |h| h + 1);
            let mut checked = from - 1;
            for height in from..=*fin {
                let Some(status) = t.beacon().header_status(shard, height).ok().flatten() else {
                    return Err(fail(INVARIANTS[2], format!("shard {s} height {height} final but unknown")));
                };
                if status.status != "final" || status.discarded.iter().any(|d| d.hash == status.hash) {
                    return Err(fail(INVARIANTS[2], format!("shard {s} height {height}: {status:?}")));
                }
                // a final block no live honest validator holds yet (each
                // imports only what re-executes) is checked when one does;
                // none for a window means an invalid or withheld header
                // became final
                if !self.final_block(t, shard, height, status.hash).map_err(|(i, e)| fail(i, e))? {
                    let since = self.unheld.entry(shard.0).or_insert((height, slot));
                    if since.0 != height {
                        *since = (height, slot);
                    }
                    if slot - since.1 > spec.challenge_window() {
                        return Err(fail(
                            INVARIANTS[2],
                            format!(
                                "shard {s} height {height} ({}) final since slot {}, and no honest validator holds it",
                                status.hash, since.1
                            ),
                        ));
                    }
                    break;
                }
                checked = height;
            }
            self.checked_final.insert(shard.0, checked);
            // the lowest header not final yet: decided within the bound of
            // live slots since its inclusion (headers finalize in order)
            if let Some(status) = t.beacon().header_status(shard, fin + 1).ok().flatten()
                && status.status == "pending"
            {
                let live = self.live_slots(status.included_slot, slot);
                if live > bound {
                    return Err(fail(
                        INVARIANTS[5],
                        format!(
                            "shard {s} height {} included at slot {} still pending after {live} live slots (bound {bound})",
                            fin + 1,
                            status.included_slot
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Slots in `(from, to]` the beacon was up.
    fn live_slots(&self, from: u64, to: u64) -> u64 {
        let at = |s: u64| self.down_before.get(s as usize).copied().unwrap_or(0);
        (to - from).saturating_sub(at(to).saturating_sub(at(from)))
    }

    /// A newly final block: every live validator of its shard holding a
    /// block at its height holds it, and its inbox consumes each channel's
    /// next messages, each once. `false` when no live validator holds it.
    fn final_block(
        &mut self,
        t: &Testnet,
        shard: ShardId,
        height: u64,
        hash: Hash,
    ) -> Result<bool, (&'static str, String)> {
        let block = (0..t.validator_count())
            .filter(|i| t.validator_info(*i).0 == shard && self.honest.contains(&t.validator_info(*i).1))
            .filter_map(|i| t.node(i)?.block(height).ok().flatten())
            .find(|b| b.header.header.hash() == hash);
        let Some(block) = block else { return Ok(false) };
        for entry in &block.inbox {
            let m = &entry.message;
            if !self.consumed.insert(m.id()) {
                return Err((
                    INVARIANTS[1],
                    format!("message {} consumed twice (shard {} height {height})", m.id(), shard.0),
                ));
            }
            let next = self.next_nonce.entry((m.src.0, shard.0)).or_insert(0);
            if m.nonce != *next {
                return Err((
                    INVARIANTS[1],
                    format!(
                        "channel {} → {}: nonce {} consumed where {} was next",
                        m.src.0, shard.0, m.nonce, next
                    ),
                ));
            }
            *next += 1;
        }
        Ok(true)
    }
}

/// The network's supply audit at the beacon's accepted heads: each shard's
/// totals from a live validator whose chain holds its accepted head
/// (`None` when some shard has none).
pub fn audit_at_beacon_heads(t: &Testnet) -> Option<shard::Audit> {
    let heads = t.beacon().heads();
    let mut shards = Vec::new();
    for (s, head) in heads.iter().enumerate() {
        let members = (0..t.validator_count()).filter(|i| t.validator_info(*i).0 == ShardId(s as u32));
        let supply = members.filter_map(|i| t.node(i)).find_map(|n| {
            let ours = n.block(head.height).ok().flatten().map(|b| b.header.header.hash());
            n.supply(head.height).ok().flatten().filter(|_| head.height == 0 || ours == Some(head.hash))
        })?;
        shards.push(supply);
    }
    Some(shard::Audit::of(shards))
}
