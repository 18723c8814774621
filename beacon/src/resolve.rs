//! What sealing decides about games: pauses of the beacon (its downtime,
//! which windows and clocks do not count), clocks run out, stakes slashed,
//! games started over when an acting stand-in lost, and headers discarded
//! with their descendants and the destination headers that consumed their
//! messages (the cascade).

use bridge::game::{Outcome, Side};
use bridge::{Address, Ending, GameRecord, Hash, Invalidation, ShardHead, ShardId};
use tracing::{info, warn};

use crate::chain::{BeaconChain, State};
use crate::dispute::{BondMove, GameLog};
use crate::store::{Discard, DiscardedHeader};
use crate::{Error, Result};

/// Accounts for the slots before `current` in which the beacon sealed
/// nothing and took no move (it was down): a pause, which windows do not
/// count ([`bridge::Pauses`]); open games' clocks and pending withdrawals move on by
/// it, so nobody loses on time for a silence it could not break.
pub(crate) fn catch_up(state: &mut State, current: u64) {
    let Some((head, _)) = state.head else { return };
    let cursor = state.disputes.seen_slot.max(head);
    // a move in slot s + 1 may come before slot s is sealed (a seal a little
    // late): only a whole slot more with neither is a pause
    if current > cursor.saturating_add(2) {
        let gap = current - cursor - 1;
        let d = &mut state.disputes;
        d.pauses.record(current, gap);
        let ids: Vec<Hash> = d.open.keys().copied().collect();
        for id in ids {
            let Some(g) = d.open.get_mut(&id) else { continue };
            g.game.turn_since = g.game.turn_since.saturating_add(gap);
            let g = g.clone();
            d.log(&g);
            d.touched.insert(id);
        }
        d.bonds.postpone(gap);
        info!(target: "beacon", from = cursor + 1, slots = gap, open_games = d.open.len(), "the beacon was down: windows and clocks resume where they stopped");
    }
    state.disputes.seen_slot = cursor.max(current);
}

/// What sealing decided about games, for the block and the database.
#[derive(Default)]
pub(crate) struct Resolutions {
    pub invalidated: Vec<Invalidation>,
    pub discarded: Vec<Discard>,
}

impl BeaconChain {
    /// At the end of `slot`: runs the clocks, settles every ended game
    /// (slashing the loser), discards what a won challenge proved invalid,
    /// and pays out due withdrawals.
    pub(crate) fn resolve_games(&self, state: &mut State, slot: u64) -> Result<Resolutions> {
        let mut out = Resolutions::default();
        let ended: Vec<Hash> = state
            .disputes
            .open
            .iter_mut()
            .filter_map(|(id, g)| g.game.tick(slot).is_some().then_some(*id))
            .collect();
        let reward = self.spec.slash_reward_percent;
        for id in ended {
            // a game voided by an earlier resolution in this loop is gone
            let Some(mut g) = state.disputes.open.remove(&id) else { continue };
            let outcome = g.game.outcome().cloned().expect("ended");
            let winner = outcome.winner();
            let (w, l) = (g.party(winner), g.party(winner.other()));
            if let (Side::Challenger, Some(s)) = (winner, g.acting) {
                // the acting stand-in's own claims lost, which proves nothing
                // about the header: it pays, and the game starts over
                // (the parties' refused steps still count in the new run)
                self.restart(state, g, s, &outcome, slot)?;
                continue;
            }
            state.disputes.rejected_steps.retain(|(game, _), _| *game != id);
            let bonds = &mut state.disputes.bonds;
            let lost = match (winner, g.acting) {
                // a stand-in won the proposer's defence: both their stakes return
                (Side::Defender, Some(s)) => {
                    bonds.unlock(&g.defender, g.stakes[0]);
                    bonds.unlock(&s, g.acting_stake);
                    g.stakes[1]
                }
                _ => {
                    bonds.unlock(&w, g.stakes[winner as usize]);
                    g.stakes[winner.other() as usize]
                }
            };
            let (mut to_winner, mut to_treasury) = bonds.slash(&l, lost, &w, reward);
            if winner == Side::Challenger {
                // a proven lie costs its proposer a whole stake, even when
                // its stakes were locked by other games on the same header
                // (colluders opening games they then throw would otherwise
                // hold the liar's bond, leaving this game's stake empty): the
                // shortfall comes from those games, which end void
                let mut short = self.spec.dispute_stake_gwei.saturating_sub(lost);
                for other in state.disputes.open.values_mut() {
                    if short == 0 {
                        break;
                    }
                    if other.header == g.header && other.defender == l && other.acting.is_none() {
                        let take = other.stakes[0].min(short);
                        other.stakes[0] -= take;
                        short -= take;
                        let (r, t) = state.disputes.bonds.slash(&l, take, &w, reward);
                        (to_winner, to_treasury) = (to_winner + r, to_treasury + t);
                    }
                }
            }
            g.ended = Some((slot, Ending::Decided { outcome: outcome.clone() }));
            state.disputes.log(&g).slashed.push(BondMove {
                from: l,
                to: Some(w),
                reward_gwei: to_winner,
                treasury_gwei: to_treasury,
            });
            state.disputes.touched.insert(id);
            info!(target: "beacon", game = %id, shard = %g.shard, height = g.height, ?outcome, rounds = g.game.rounds, "dispute game ended");
            if winner == Side::Challenger {
                self.invalidate(state, g.shard, g.height, id, None, slot, &mut out)?;
            }
        }
        state.disputes.bonds.release(slot);
        Ok(out)
    }

    /// The acting stand-in `s` of game `g` lost (`outcome`): its stake is
    /// slashed (the winner's share to the challenger), and the game starts
    /// over against the header with the proposer defending again. A
    /// proposer's wrong claims lose the header; a stand-in's lose only the
    /// stand-in's stake, so no shard-mate can frame an honest proposer,
    /// and each restart costs whoever forces it a stake.
    fn restart(
        &self,
        state: &mut State,
        mut g: GameRecord,
        s: Address,
        outcome: &Outcome,
        slot: u64,
    ) -> Result<()> {
        let header = self
            .db
            .shard_header(g.shard, g.height)?
            .ok_or_else(|| Error::Corrupt(format!("the header of game {}", g.id)))?;
        let d = &mut state.disputes;
        let (to_winner, to_treasury) =
            d.bonds.slash(&s, g.acting_stake, &g.challenger, self.spec.slash_reward_percent);
        g.game = self.new_game(&header.header.header, g.items, g.receipt_item, slot);
        g.claimed = g.receipt_item.is_none();
        (g.acting, g.acting_stake) = (None, 0);
        g.resets += 1;
        d.log(&g).slashed.push(BondMove {
            from: s,
            to: Some(g.challenger),
            reward_gwei: to_winner,
            treasury_gwei: to_treasury,
        });
        d.touched.insert(g.id);
        info!(target: "beacon", game = %g.id, stand_in = %s, ?outcome, resets = g.resets, "the acting stand-in lost: slashed, the game starts over");
        d.open.insert(g.id, g);
        Ok(())
    }

    /// Discards `shard`'s header at `height` and everything above it,
    /// then every destination header that consumed a message of a
    /// discarded one (recursively); voids the games against them.
    #[allow(clippy::too_many_arguments)]
    fn invalidate(
        &self,
        state: &mut State,
        shard: ShardId,
        height: u64,
        game: Hash,
        cause: Option<(ShardId, u64)>,
        slot: u64,
        out: &mut Resolutions,
    ) -> Result<()> {
        let s = shard.0 as usize;
        let old = state.heads[s];
        if height == 0 || height > old.height {
            return Ok(());
        }
        let mut records = Vec::new();
        let mut first = None;
        for h in height..=old.height {
            let (hash, included) = match self.db.shard_header(shard, h)? {
                Some(r) => (r.header.header.hash(), r.included_in),
                None => match state
                    .included
                    .iter()
                    .find(|a| a.block.header.header.shard == shard && a.block.header.header.height == h)
                {
                    Some(a) => (a.block.header.header.hash(), slot),
                    None => break,
                },
            };
            first.get_or_insert(hash);
            let proven = h == height && cause.is_none();
            records.push((
                h,
                DiscardedHeader {
                    hash,
                    included_slot: included,
                    invalidated_slot: slot,
                    game,
                    proven,
                    cause,
                },
            ));
        }
        state
            .included
            .retain(|a| !(a.block.header.header.shard == shard && a.block.header.header.height >= height));
        // the shard continues from the last valid header
        let (parent, inbound) = if height == 1 {
            (self.spec.shard_genesis[s].clone(), vec![0; self.spec.shards as usize])
        } else if let Some(r) = self.db.shard_header(shard, height - 1)? {
            (r.header.header, r.inbound_after)
        } else {
            // the parent was accepted in this very slot (not sealed yet)
            let a = state
                .included
                .iter()
                .find(|a| a.block.header.header.shard == shard && a.block.header.header.height == height - 1)
                .ok_or_else(|| {
                    Error::Corrupt(format!("header {shard}/{} below a discarded one is missing", height - 1))
                })?;
            (a.block.header.header.clone(), a.inbound_after.clone())
        };
        state.heads[s] =
            ShardHead { shard, height: height - 1, hash: parent.hash(), slot: parent.beacon_slot };
        state.tips[s] = parent;
        for (src, next) in inbound.iter().enumerate() {
            state.channels.insert((ShardId(src as u32), shard), *next);
        }
        let inv = Invalidation { shard, height, header: first.unwrap_or_default(), game, cause };
        warn!(target: "beacon", %shard, height, to = old.height, ?cause, "discarded invalid headers");
        state.disputes.invalid_chain = bridge::chain_invalidation(&state.disputes.invalid_chain, &inv);
        out.invalidated.push(inv);
        out.discarded.push(Discard { shard, from: height, to: old.height, records });
        // games against discarded headers end with stakes returned
        let voided: Vec<Hash> = state
            .disputes
            .open
            .values()
            .filter(|g| g.shard == shard && g.height >= height)
            .map(|g| g.id)
            .collect();
        for id in voided {
            let mut g = state.disputes.open.remove(&id).expect("listed");
            state.disputes.rejected_steps.retain(|(game, _), _| *game != id);
            state.disputes.bonds.unlock(&g.defender, g.stakes[0]);
            state.disputes.bonds.unlock(&g.challenger, g.stakes[1]);
            if let Some(s) = g.acting {
                state.disputes.bonds.unlock(&s, g.acting_stake);
            }
            g.ended = Some((slot, Ending::Void));
            if let Some(l) = state.disputes.logs.get_mut(&id) {
                l.record = g.clone();
            } else {
                state.disputes.logs.insert(
                    id,
                    GameLog {
                        record: g.clone(),
                        moves: vec![],
                        step: None,
                        rejected_steps: 0,
                        slashed: vec![],
                    },
                );
            }
            state.disputes.touched.insert(id);
        }
        // the cascade: destinations that consumed messages of discarded headers
        for d in 0..self.spec.shards {
            if d == shard.0 {
                continue;
            }
            let dst = ShardId(d);
            let from = state.finalized[d as usize] + 1;
            let to = state.heads[d as usize].height;
            let mut hit = None;
            for h in from..=to {
                let deps = match self.db.shard_header(dst, h)? {
                    Some(r) => r.depends_on,
                    None => match state
                        .included
                        .iter()
                        .find(|a| a.block.header.header.shard == dst && a.block.header.header.height == h)
                    {
                        Some(a) => crate::store::dependencies(&a.block),
                        None => break,
                    },
                };
                if let Some((_, src_h)) = deps.iter().find(|(src, sh)| *src == shard && *sh >= height) {
                    hit = Some((h, *src_h));
                    break;
                }
            }
            if let Some((h, src_h)) = hit {
                self.invalidate(state, dst, h, game, Some((shard, src_h)), slot, out)?;
            }
        }
        Ok(())
    }
}
