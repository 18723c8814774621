//! The invariants of a run on processes, read over RPC after every slot
//! (the same six the deterministic tier's `Checker` reads from state).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;

use super::{Node, Run, bounded};
use crate::cluster::{self, rpc};
use crate::scenario::invariants::{INVARIANTS, Violation};

impl Run<'_> {
    /// The invariants, read over RPC.
    pub(super) async fn check(&mut self, slot: u64) -> Result<(), Violation> {
        let fail = |invariant: &'static str, evidence: String| Violation { slot, invariant, evidence };
        if self.down.contains(&Node::Beacon) {
            return Ok(());
        }
        let dir = self.m.nodes[0]
            .datadir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        match cluster::audit(&dir).await {
            Ok(a) if !a.holds => return Err(fail(INVARIANTS[0], format!("{a:?}"))),
            Ok(_) => {}
            Err(_) => self.audits_skipped += 1,
        }
        if let Ok(bad) = cluster::invalid_final(&dir).await
            && let Some(b) = bad.first()
        {
            return Err(fail(INVARIANTS[2], format!("{b:?}")));
        }
        if let Ok(bonds) = rpc(&self.client, self.beacon_url(), "beacon_bonds", json!([])).await {
            for who in &self.honest {
                let slashed = bonds["parties"][who.as_str()]["slashed"].as_u64().or_else(|| {
                    bonds["parties"]
                        .as_object()?
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(who))
                        .and_then(|(_, v)| v["slashed"].as_u64())
                });
                if slashed.unwrap_or(0) > 0 {
                    return Err(fail(INVARIANTS[3], format!("{who} lost {} gwei", slashed.unwrap_or(0))));
                }
            }
        }
        self.check_inboxes(slot).await?;
        // per shard, all at once: honest validators agree on the newest
        // final height's state root; the lowest pending header is decided
        // within the bound
        let bound = self.spec.decision_bound();
        let me = &*self;
        let results = bounded((0..me.s.network.shards).map(|s| me.check_shard(s, bound, slot))).await;
        for (s, r) in results.into_iter().enumerate() {
            if let Some(fin) = r? {
                self.checked_final[s] = fin;
            }
        }
        Ok(())
    }

    /// Exactly-once delivery per channel: every newly final block's inbox
    /// (`optishard_getBlockInbox` from an honest live validator, all asked
    /// at once) consumes each message once, each channel's nonces in order.
    /// A height no honest validator serves yet is checked in a later slot.
    async fn check_inboxes(&mut self, slot: u64) -> Result<(), Violation> {
        let wanted: Vec<(u32, u64)> = (0..self.s.network.shards)
            .flat_map(|s| {
                let from = self.inbox_checked[s as usize] + 1;
                (from..=self.final_seen[s as usize]).take(64).map(move |h| (s, h))
            })
            .collect();
        let me = &*self;
        let inboxes = bounded(wanted.iter().map(|(s, h)| async move {
            for (n, ep) in &me.nodes {
                if !matches!(n, Node::Validator { shard: x, .. } if x == s)
                    || me.down.contains(n)
                    || !me.honest.contains(&ep.entry.address)
                {
                    continue;
                }
                if let Ok(v) =
                    rpc(&me.client, &ep.rpcs[0], "optishard_getBlockInbox", json!([format!("{h:#x}")])).await
                    && let Some(list) = v.as_array()
                {
                    return Some(list.clone());
                }
            }
            None
        }))
        .await;
        let mut stuck = BTreeSet::new();
        for ((s, h), inbox) in wanted.into_iter().zip(inboxes) {
            if stuck.contains(&s) {
                continue;
            }
            let Some(inbox) = inbox else {
                stuck.insert(s);
                // a final block no honest validator serves for a window is
                // an invalid or withheld header made final
                let since = self.unheld.entry(s).or_insert((h, slot));
                if since.0 != h {
                    *since = (h, slot);
                }
                if slot.saturating_sub(since.1) > self.spec.challenge_window() {
                    return Err(Violation {
                        slot,
                        invariant: INVARIANTS[2],
                        evidence: format!(
                            "shard {s} height {h} final since slot {}, and no honest validator serves it",
                            since.1
                        ),
                    });
                }
                continue;
            };
            for e in inbox {
                let id = e["id"].as_str().unwrap_or_default().to_string();
                let (src, nonce) =
                    (e["src"].as_u64().unwrap_or(u64::MAX) as u32, e["nonce"].as_u64().unwrap_or(u64::MAX));
                let fail = |evidence: String| Violation { slot, invariant: INVARIANTS[1], evidence };
                if !self.consumed.insert(id.clone()) {
                    return Err(fail(format!("message {id} consumed twice (shard {s} height {h})")));
                }
                let next = self.next_nonce.entry((src, s)).or_insert(0);
                if nonce != *next {
                    return Err(fail(format!(
                        "channel {src} → {s}: nonce {nonce} consumed where {next} was next (height {h})"
                    )));
                }
                *next += 1;
            }
            self.inbox_checked[s as usize] = h;
            self.measures.totals.inbox_heights_checked += 1;
        }
        Ok(())
    }

    /// One shard's part of `check`: the final height newly checked, if any.
    async fn check_shard(&self, s: u32, bound: u64, slot: u64) -> Result<Option<u64>, Violation> {
        let fail = |invariant: &'static str, evidence: String| Violation { slot, invariant, evidence };
        let mut checked = None;
        let fin = self.final_seen[s as usize];
        if fin > self.checked_final[s as usize] {
            let Ok(st) = rpc(&self.client, self.beacon_url(), "beacon_headerStatus", json!([s, fin])).await
            else {
                return Ok(None);
            };
            let want = st["hash"].as_str().unwrap_or_default().to_ascii_lowercase();
            let discarded = st["discarded"].as_array().into_iter().flatten().any(|d| d["hash"] == st["hash"]);
            if st["status"] != "final" || discarded {
                return Err(fail(INVARIANTS[2], format!("shard {s} height {fin} listed final: {st}")));
            }
            // every honest live validator holding a block at that height
            // holds the beacon's final one
            for (n, ep) in &self.nodes {
                if !matches!(n, Node::Validator { shard: x, .. } if *x == s)
                    || self.down.contains(n)
                    || !self.honest.contains(&ep.entry.address)
                {
                    continue;
                }
                if let Ok(b) = rpc(
                    &self.client,
                    &ep.rpcs[0],
                    "eth_getBlockByNumber",
                    json!([format!("{fin:#x}"), false]),
                )
                .await
                    && let Some(hash) = b["hash"].as_str()
                    && hash.to_ascii_lowercase() != want
                {
                    return Err(fail(
                        INVARIANTS[4],
                        format!(
                            "shard {s} height {fin}: {n} holds {hash}, the beacon's final header is {want}"
                        ),
                    ));
                }
            }
            self.final_checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            checked = Some(fin);
        }
        if let Ok(st) = rpc(&self.client, self.beacon_url(), "beacon_headerStatus", json!([s, fin + 1])).await
            && st["status"] == "pending"
            && let Some(included) = st["includedSlot"].as_u64()
        {
            let now = self.spec.slot_at(net::now_ms());
            let live = now.saturating_sub(included).saturating_sub(self.down_slots);
            if live > bound {
                return Err(fail(
                    INVARIANTS[5],
                    format!(
                        "shard {s} height {} included at slot {included} pending after {live} live slots (bound {bound})",
                        fin + 1
                    ),
                ));
            }
        }
        Ok(checked)
    }
}
