//! The referee (DESIGN.md, Disputes): the dispute rules as one pure state
//! machine. It owns the games, the bonds and the pauses, and changes them
//! only through [`Referee::apply`] (one move at a slot) and
//! [`Referee::seal`] (the end of a slot: clocks, verdicts, slashing). What
//! it needs of the chain — accepted headers, finality, the one-step
//! re-execution, and discarding what a won challenge proved invalid — it
//! asks through [`RefereeStore`], so the same rules run over the beacon's
//! database and over the model the adversarial tests drive
//! (`referee_model.rs`), the way lighthouse's `ForkChoice` runs over a
//! `ForkChoiceStore`.
//!
//! Signatures, per-block byte budgets and persistence are the chain's: a
//! move reaches [`Referee::apply`] with its signer already recovered.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bridge::game::{Game, GameParams, MoveError, Outcome, Side, StepVerdict};
use bridge::{
    Action, Address, Bonds, ChainSpec, Decode, DecodeError, Encode, Ending, GameRecord, Hash, Invalidation,
    Pauses, ShardHeader, ShardId, TraceCommitment, decode_list, encode_list, game_id,
};
use tracing::info;

use crate::dispute::{BondMove, GameLog, MoveLog, MoveRejection, StepStats};

/// Steps one party may have refused as proving nothing, per game (each
/// costs the referee a re-execution): past it, that party's steps in that
/// game are not looked at.
pub const MAX_REJECTED_STEPS: u32 = 4;

/// Steps one party may have refused per slot, over all its games (an
/// honest party's steps are never refused, so this never slows one): with
/// the per-game limit it bounds what junk steps cost the referee.
pub const MAX_REFUSED_STEPS_PER_SLOT: u32 = MAX_REJECTED_STEPS;

/// An accepted header as the referee sees it.
#[derive(Clone, Debug)]
pub struct AcceptedHeader {
    /// The header.
    pub header: ShardHeader,
    /// The beacon slot that included it.
    pub included_in: u64,
    /// Items in its block (`n` of `c_0 … c_n`).
    pub items: u64,
}

/// What the single step's re-execution found.
#[derive(Clone, Debug)]
pub struct CheckedStep {
    /// The verdict (`Rejected`: it proves nothing).
    pub verdict: StepVerdict,
    /// The level it decides at (1: a whole item, which ends the game in
    /// any phase once descended; 2: one step of the item's trace).
    pub level: u8,
    /// Its position in its level's range.
    pub index: u64,
    /// A level-2 instruction's pc, opcode, depth and name.
    pub instruction: Option<(u64, u8, u64, String)>,
    /// Its witness's encoded size.
    pub witness_bytes: usize,
    /// Wall time of the re-execution, microseconds.
    pub micros: u64,
}

/// What the referee reads of the chain, the one-step machine it asks, and
/// the one thing it does to the chain: discarding a header a game proved
/// invalid (with its descendants and what consumed its messages).
pub trait RefereeStore {
    /// The slot of the newest sealed beacon block, if any.
    fn sealed_head(&self) -> Option<u64>;
    /// The accepted header of `shard` at `height`, if it is still there
    /// (`None`: never accepted, or discarded).
    fn accepted(&self, shard: ShardId, height: u64) -> Option<AcceptedHeader>;
    /// `shard`'s newest final height.
    fn finalized(&self, shard: ShardId) -> u64;
    /// Whether game `id` existed and ended before the referee's memory.
    fn ended_before(&self, id: &Hash) -> bool;
    /// Re-executes `step` (encoded) from `game`'s agreed `c_lo`, against its
    /// claimed `c_hi`, in `header`'s block.
    fn check_step(&self, header: &ShardHeader, game: &Game, step: &[u8]) -> CheckedStep;
    /// Discards `shard`'s header at `height` (proved invalid by `game` at
    /// `slot`), everything above it, and every destination header that
    /// consumed a message of a discarded one: the invalidations, in order.
    fn discard(
        &mut self,
        shard: ShardId,
        height: u64,
        game: Hash,
        slot: u64,
    ) -> crate::Result<Vec<Invalidation>>;
}

/// How a game ended at a seal (for metrics and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The game.
    pub game: Hash,
    /// Its header's shard and height.
    pub shard: ShardId,
    /// Its height.
    pub height: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether the game goes on: an acting stand-in lost, which proves
    /// nothing about the header.
    pub restarted: bool,
}

/// What one seal decided.
#[derive(Default, Debug)]
pub struct Sealed {
    /// Games decided (or restarted).
    pub resolutions: Vec<Resolution>,
    /// Headers discarded.
    pub invalidated: Vec<Invalidation>,
}

/// The spec's dispute parameters.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Sections per round and each side's clock.
    pub game: GameParams,
    /// A game's stake, per side.
    pub stake: u64,
    /// The share of a slashed stake paid to the winner.
    pub reward_percent: u64,
    /// The challenge window, in live slots.
    pub window: u64,
    /// Each validator's shard.
    pub validators: BTreeMap<Address, ShardId>,
}

impl Rules {
    /// The rules `spec` sets.
    pub fn of(spec: &ChainSpec) -> Self {
        Rules {
            game: GameParams { k: spec.dispute_k, clock_slots: spec.game_clock() },
            stake: spec.dispute_stake_gwei,
            reward_percent: spec.slash_reward_percent,
            window: spec.challenge_window(),
            validators: spec.validators.iter().map(|v| (v.address, v.shard)).collect(),
        }
    }
}

/// The dispute state and its rules.
#[derive(Default)]
pub struct Referee {
    rules: Rules,
    /// Open games by id.
    pub(crate) open: BTreeMap<Hash, GameRecord>,
    pub(crate) bonds: Bonds,
    /// Chain hash of every invalidation so far.
    pub(crate) invalid_chain: Hash,
    /// Stretches of slots the beacon sealed nothing in, which windows do
    /// not count ([`bridge::Pauses`]).
    pub(crate) pauses: Pauses,
    /// The newest slot the referee has seen (sealed, or moved in).
    pub(crate) seen_slot: u64,
    /// Logs of open games and of games ended since the last seal.
    pub(crate) logs: BTreeMap<Hash, GameLog>,
    /// Games changed since the last seal.
    pub(crate) touched: BTreeSet<Hash>,
    /// Steps refused per (game, party).
    pub(crate) rejected_steps: HashMap<(Hash, Address), u32>,
    /// Steps refused per party in the slot being built.
    refused_this_slot: HashMap<Address, u32>,
    /// Test-only faults (the model test's seeded bugs).
    #[cfg(test)]
    pub(crate) faults: Faults,
}

/// Rules a test may switch off, to show the model test finds the bug.
#[cfg(test)]
#[derive(Default, Clone, Copy)]
pub(crate) struct Faults {
    /// Accept moves whatever game position they name (replays).
    pub ignore_positions: bool,
    /// Refuse level 1's whole-item step once a game descended, unless level
    /// 2 is at its own step (a descent then escapes a witness that fits).
    pub item_steps_only_at_step: bool,
}

impl Referee {
    /// The genesis state: every bonded party's bond.
    pub fn genesis(spec: &ChainSpec) -> Self {
        Referee { rules: Rules::of(spec), bonds: Bonds::genesis(spec.bonded()), ..Default::default() }
    }

    /// The root the beacon state commits to.
    pub fn root(&self) -> Hash {
        bridge::disputes_root(self.open.values(), &self.bonds, &self.invalid_chain, &self.pauses)
    }

    /// The bonds.
    pub fn bonds(&self) -> &Bonds {
        &self.bonds
    }

    /// The open games, by id.
    pub fn open_games(&self) -> &BTreeMap<Hash, GameRecord> {
        &self.open
    }

    /// Whether a game is open against `shard`'s header at `height`.
    pub fn disputed(&self, shard: ShardId, height: u64) -> bool {
        self.open.values().any(|g| g.shard == shard && g.height == height)
    }

    /// The slot by which a header included at `included` leaves its
    /// challenge window (the window counts live slots only).
    pub fn window_end(&self, included: u64) -> u64 {
        self.pauses.deadline(included, self.rules.window)
    }

    /// Whether a header included at `included` has spent its window by `slot`.
    pub fn window_passed(&self, included: u64, slot: u64) -> bool {
        self.pauses.elapsed(included, slot) >= self.rules.window
    }

    /// The persisted form: open games, bonds, the invalidation chain,
    /// pauses and refused steps (the games' logs are stored by id beside it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_list(&self.open.values().cloned().collect::<Vec<_>>(), &mut out);
        self.bonds.encode_to(&mut out);
        self.invalid_chain.encode_to(&mut out);
        self.pauses.encode_to(&mut out);
        // each party's refused steps per open game: a beacon restart must
        // not give it MAX_REJECTED_STEPS more re-executions
        let mut refused: Vec<(&(Hash, Address), &u32)> = self.rejected_steps.iter().collect();
        refused.sort();
        (refused.len() as u32).encode_to(&mut out);
        for ((game, party), n) in refused {
            game.encode_to(&mut out);
            party.encode_to(&mut out);
            n.encode_to(&mut out);
        }
        out
    }

    /// Reads the persisted form back; the open games' logs come from
    /// `log_of` (the database).
    pub fn decode(
        rules: Rules,
        mut input: &[u8],
        log_of: impl Fn(&Hash) -> Option<GameLog>,
    ) -> Result<Self, DecodeError> {
        let input = &mut input;
        let open: Vec<GameRecord> = decode_list(input)?;
        let bonds = Bonds::decode(input)?;
        let invalid_chain = Hash::decode(input)?;
        let pauses = Pauses::decode(input)?;
        let n = u32::decode(input)?;
        // 56 bytes an entry: a count past what is left is a lie
        if n as usize > input.len() / 56 {
            return Err(DecodeError::Invalid("refused-step entries past the input"));
        }
        let mut rejected_steps = HashMap::new();
        for _ in 0..n {
            let key = (Hash::decode(input)?, Address::decode(input)?);
            rejected_steps.insert(key, u32::decode(input)?);
        }
        if !input.is_empty() {
            return Err(DecodeError::TrailingBytes(input.len()));
        }
        let logs = open.iter().filter_map(|g| log_of(&g.id)).map(|l| (l.record.id, l)).collect();
        Ok(Referee {
            rules,
            open: open.into_iter().map(|g| (g.id, g)).collect(),
            bonds,
            invalid_chain,
            pauses,
            logs,
            rejected_steps,
            ..Default::default()
        })
    }

    /// The log of game `g`, created if new, its record brought up to date.
    pub(crate) fn log(&mut self, g: &GameRecord) -> &mut GameLog {
        let log = self.logs.entry(g.id).or_insert_with(|| GameLog {
            record: g.clone(),
            moves: vec![],
            step: None,
            rejected_steps: 0,
            slashed: vec![],
        });
        log.record = g.clone();
        log
    }

    /// Accounts for the slots before `slot` in which the beacon sealed
    /// nothing and took no move (it was down): a pause, which windows do
    /// not count; open games' clocks and pending withdrawals move on by
    /// it, so nobody loses on time for a silence it could not break.
    pub fn catch_up(&mut self, sealed_head: Option<u64>, slot: u64) {
        let Some(head) = sealed_head else { return };
        let cursor = self.seen_slot.max(head);
        // a move in slot s + 1 may come before slot s is sealed (a seal a
        // little late): only a whole slot more with neither is a pause
        if slot > cursor.saturating_add(2) {
            let gap = slot - cursor - 1;
            self.pauses.record(slot, gap);
            let ids: Vec<Hash> = self.open.keys().copied().collect();
            for id in ids {
                let Some(g) = self.open.get_mut(&id) else { continue };
                g.game.turn_since = g.game.turn_since.saturating_add(gap);
                let g = g.clone();
                self.log(&g);
                self.touched.insert(id);
            }
            self.bonds.postpone(gap);
            info!(target: "beacon", from = cursor + 1, slots = gap, open_games = self.open.len(), "the beacon was down: windows and clocks resume where they stopped");
        }
        self.seen_slot = cursor.max(slot);
    }

    /// Judges `signer`'s move at `slot`; an accepted move is applied at
    /// once. Returns the game it played in (none for a withdrawal).
    pub fn apply(
        &mut self,
        signer: Address,
        action: &Action,
        slot: u64,
        bytes: usize,
        store: &impl RefereeStore,
    ) -> Result<Option<Hash>, MoveRejection> {
        self.catch_up(store.sealed_head(), slot);
        if !self.bonds.parties.contains_key(&signer) && !self.rules.validators.contains_key(&signer) {
            return Err(MoveRejection::NotBonded { who: signer, free: 0, stake: self.rules.stake });
        }
        // INVARIANT: an in-game move names the game's current position, so
        // any signed move is valid once, in one state of one run
        if let (Some(game), Some(at)) = (action.game(), action.position())
            && let Some(g) = self.open.get(&game)
            && g.position() != at
            && !self.ignores_positions()
        {
            return Err(MoveRejection::StalePosition { got: at, want: g.position() });
        }
        let id = match action {
            Action::Open { shard, height, header, item } => {
                Some(self.open_game(signer, (*shard, *height, *header), *item, slot, store)?)
            }
            Action::Withdraw { amount_gwei, nonce } => {
                let release = slot.saturating_add(self.rules.window);
                self.bonds
                    .withdraw(&signer, *amount_gwei, *nonce, release)
                    .map_err(MoveRejection::BadWithdrawal)?;
                None
            }
            Action::Claim { game, commitment, receipts, proof, .. } => {
                let g = self.defender_move(game, signer, slot)?;
                let Some(j) = g.receipt_item.filter(|_| !g.claimed()) else {
                    return Err(MoveRejection::NothingToClaim);
                };
                let header = store.accepted(g.shard, g.height).ok_or(MoveRejection::UnknownGame(*game))?;
                if receipts.len() != j
                    || proof.len != g.items
                    || receipts.root() != commitment.receipts_root
                    || !receipts.is_prefix_of(&header.header.receipts_root, proof)
                {
                    return Err(MoveRejection::BadClaim { item: j });
                }
                let hi = commitment.hash();
                self.take_over(game, signer);
                let g = self.open.get_mut(game).expect("checked above");
                g.game.claim(hi).map_err(rejection)?;
                Some(*game)
            }
            Action::Bisect { game, commitments, .. } => {
                let g = self.defender_move(game, signer, slot)?;
                if !g.claimed() {
                    return Err(MoveRejection::Unclaimed);
                }
                let mut next = g.game.clone();
                next.bisect(commitments.clone(), slot).map_err(rejection)?;
                self.take_over(game, signer);
                self.open.get_mut(game).expect("checked above").game = next;
                Some(*game)
            }
            Action::Pick { game, index, .. } => {
                let g = self.open.get_mut(game).ok_or(MoveRejection::UnknownGame(*game))?;
                if signer != g.challenger {
                    return Err(MoveRejection::NotAParty { who: signer, side: Side::Challenger });
                }
                g.game.pick(*index as usize, slot).map_err(rejection)?;
                Some(*game)
            }
            Action::Descend { game, item, proof, last, .. } => {
                let g = self.defender_move(game, signer, slot)?;
                let header = store.accepted(g.shard, g.height).ok_or(MoveRejection::UnknownGame(*game))?;
                if proof.index != g.game.lo || proof.verify(&header.header.items_root, item).is_err() {
                    return Err(MoveRejection::BadDescent(format!(
                        "not the header's item {} (the one the game pinned)",
                        g.game.lo
                    )));
                }
                let most = bridge::game::item_trace_bound(header.header.gas_limit);
                if *last > most {
                    return Err(MoveRejection::BadDescent(format!(
                        "a trace of {last} steps in a block of {} gas (at most {most})",
                        header.header.gas_limit
                    )));
                }
                let mut next = g.game.clone();
                next.descend(*item, *last, slot).map_err(rejection)?;
                self.take_over(game, signer);
                self.open.get_mut(game).expect("checked above").game = next;
                Some(*game)
            }
            Action::Step { game, step, .. } => {
                self.step(*game, signer, step, slot, store)?;
                Some(*game)
            }
        };
        if let Some(id) = id
            && let Some(g) = self.open.get_mut(&id)
        {
            g.moves += 1;
            let g = g.clone();
            self.log(&g).moves.push(MoveLog {
                slot,
                party: signer,
                action: action.label().into(),
                round: g.game.rounds,
                bytes,
            });
            self.touched.insert(id);
        }
        Ok(id)
    }

    #[cfg(test)]
    fn item_steps_only_at_step(&self) -> bool {
        self.faults.item_steps_only_at_step
    }

    #[cfg(not(test))]
    fn item_steps_only_at_step(&self) -> bool {
        false
    }

    #[cfg(test)]
    fn ignores_positions(&self) -> bool {
        self.faults.ignore_positions
    }

    #[cfg(not(test))]
    fn ignores_positions(&self) -> bool {
        false
    }

    /// Whether `signer` may stand in for the proposer of `g` at `slot`: a
    /// validator of the header's shard, neither the proposer nor the
    /// challenger, that has not stood in in this game before, once the
    /// proposer has let half its clock run on this turn.
    fn may_stand_in(&self, g: &GameRecord, signer: &Address, slot: u64) -> bool {
        self.rules.validators.get(signer) == Some(&g.shard) && g.may_stand_in(signer, slot)
    }

    /// The game `id`, if `signer` may make the defender's move in it (the
    /// acting defender, or a shard-mate that may stand in now).
    fn defender_move(&self, id: &Hash, signer: Address, slot: u64) -> Result<&GameRecord, MoveRejection> {
        let g = self.open.get(id).ok_or(MoveRejection::UnknownGame(*id))?;
        if g.party(Side::Defender) == signer || self.may_stand_in(g, &signer, slot) {
            Ok(g)
        } else {
            Err(MoveRejection::NotAParty { who: signer, side: Side::Defender })
        }
    }

    /// After a defender's move by `signer` was judged valid: a stand-in's
    /// first move makes it the acting defender, with up to one stake of its
    /// free bond locked. Not a whole stake required: an honest shard-mate
    /// standing in for an offline proposer against many games must not run
    /// out of bond (a coalition opening games would otherwise decide how
    /// many it can defend); what bounds lying stand-ins is that each
    /// shard-mate stands in once per game.
    fn take_over(&mut self, id: &Hash, signer: Address) {
        let Some(g) = self.open.get_mut(id) else { return };
        if g.party(Side::Defender) == signer {
            return;
        }
        g.acting_stake = self.bonds.lock(&signer, self.rules.stake);
        g.acting = Some(signer);
        g.stood_in.push(signer);
        info!(target: "beacon", game = %id, stand_in = %signer, proposer = %g.defender, "a shard-mate took the defence over");
    }

    fn open_game(
        &mut self,
        signer: Address,
        (shard, height, header): (ShardId, u64, Hash),
        item: Option<u64>,
        slot: u64,
        store: &impl RefereeStore,
    ) -> Result<Hash, MoveRejection> {
        let unknown = MoveRejection::UnknownHeader { shard, height, header };
        let rec = match store.accepted(shard, height) {
            Some(r) if r.header.hash() == header => r,
            _ => return Err(unknown),
        };
        // the window counts live slots only (the beacon's downtime extends it)
        let last = self.window_end(rec.included_in).saturating_sub(1);
        if slot > last || height <= store.finalized(shard) {
            return Err(MoveRejection::WindowClosed { shard, height, closed: last });
        }
        let id = game_id(&header, &signer, item);
        // one game per party, header and target, ever
        if self.open.contains_key(&id) || self.logs.contains_key(&id) || store.ended_before(&id) {
            return Err(MoveRejection::Duplicate);
        }
        // INVARIANT: never reached while the spec's bonds stake at most
        // MAX_OPEN_GAMES games (ChainSpec::validate): each open game holds a
        // challenger stake, so an honest bonded challenger is never kept out
        if self.open.len() >= bridge::MAX_OPEN_GAMES {
            return Err(MoveRejection::TooManyGames);
        }
        let stake = self.rules.stake;
        let free = self.bonds.parties.get(&signer).map_or(0, |b| b.free);
        if free < stake {
            return Err(MoveRejection::NotBonded { who: signer, free, stake });
        }
        let h = &rec.header;
        if h.proposer == signer {
            return Err(MoveRejection::OwnHeader);
        }
        if let Some(j) = item
            && !(1..=rec.items).contains(&j)
        {
            return Err(MoveRejection::NoSuchItem { item: j, items: rec.items });
        }
        let challenger_stake = self.bonds.lock(&signer, stake);
        let defender_stake = self.bonds.lock(&h.proposer, stake);
        let game = new_game(&self.rules.game, h, rec.items, item, slot);
        let record = GameRecord {
            id,
            shard,
            height,
            header,
            items: rec.items,
            receipt_item: item,
            defender: h.proposer,
            challenger: signer,
            opened_slot: slot,
            stakes: [defender_stake, challenger_stake],
            game,
            moves: 0,
            ended: None,
            acting: None,
            acting_stake: 0,
            resets: 0,
            stood_in: vec![],
        };
        info!(target: "beacon", game = %id, %shard, height, challenger = %signer, items = rec.items, "dispute game opened");
        self.open.insert(id, record);
        Ok(id)
    }

    /// The game `signer` may show the single step in now: a party, or a
    /// shard-mate for an overdue proposer (a step is evidence, whoever
    /// shows it, and decides for the side playing now; showing it takes
    /// nothing over), at the game's step, within its refused-step limits.
    fn step_game(&self, id: &Hash, signer: Address, slot: u64) -> Result<&GameRecord, MoveRejection> {
        let g = self.open.get(id).ok_or(MoveRejection::UnknownGame(*id))?;
        if g.side_of(&signer).is_none() && !self.may_stand_in(g, &signer, slot) {
            return Err(MoveRejection::NotAParty { who: signer, side: Side::Defender });
        }
        // once descended, level 1's whole-item step may end the game in
        // any phase (level 2's own step is checked at its step)
        if g.game.phase != bridge::game::Phase::Step
            && (g.game.descent.is_none() || self.item_steps_only_at_step())
        {
            return Err(MoveRejection::NotAtStep);
        }
        if self.rejected_steps.get(&(*id, signer)).is_some_and(|n| *n >= MAX_REJECTED_STEPS) {
            return Err(MoveRejection::StepsExhausted { limit: MAX_REJECTED_STEPS });
        }
        if self.refused_this_slot.get(&signer).is_some_and(|n| *n >= MAX_REFUSED_STEPS_PER_SLOT) {
            return Err(MoveRejection::Full);
        }
        Ok(g)
    }

    /// Steps `who` had refused in the slot being built.
    pub fn refused_in_slot(&self, who: &Address) -> u32 {
        self.refused_this_slot.get(who).copied().unwrap_or(0)
    }

    /// What a `Step` move would be re-executed against if applied now (its
    /// game's header and state), after every check that needs no
    /// re-execution: the beacon re-executes it before taking its state
    /// lock, then applies it under the lock (the position check makes the
    /// result stale-proof). `None` for any other move.
    pub fn step_target(
        &self,
        signer: Address,
        action: &Action,
        slot: u64,
    ) -> Result<Option<(ShardId, u64, Game)>, MoveRejection> {
        let Action::Step { game, at, .. } = action else { return Ok(None) };
        if let Some(g) = self.open.get(game)
            && g.position() != *at
        {
            return Err(MoveRejection::StalePosition { got: *at, want: g.position() });
        }
        let g = self.step_game(game, signer, slot)?;
        Ok(Some((g.shard, g.height, g.game.clone())))
    }

    fn step(
        &mut self,
        id: Hash,
        signer: Address,
        bytes: &[u8],
        slot: u64,
        store: &impl RefereeStore,
    ) -> Result<(), MoveRejection> {
        let g = self.step_game(&id, signer, slot)?;
        let header = store.accepted(g.shard, g.height).ok_or(MoveRejection::UnknownGame(id))?;
        let step = store.check_step(&header.header, &g.game, bytes);
        let micros = step.micros;
        if let StepVerdict::Rejected(why) = step.verdict {
            if let Some(l) = self.logs.get_mut(&id) {
                l.rejected_steps += 1;
            }
            *self.rejected_steps.entry((id, signer)).or_default() += 1;
            *self.refused_this_slot.entry(signer).or_default() += 1;
            return Err(MoveRejection::BadStep(why));
        }
        let g = self.open.get_mut(&id).expect("checked above");
        if step.level == 1 {
            g.game.settle_item(&step.verdict, slot).map_err(rejection)?;
        } else {
            g.game.settle(&step.verdict, slot).map_err(rejection)?;
        }
        let stats = StepStats {
            level: step.level,
            index: step.index,
            instruction: step.instruction.clone().map(|(pc, opcode, depth, name)| {
                crate::dispute::DisputedInstruction { pc, opcode, name, depth }
            }),
            step_bytes: bytes.len(),
            witness_bytes: step.witness_bytes,
            verify_micros: micros,
            verdict: if step.verdict == StepVerdict::Upheld { "upheld" } else { "refuted" }.into(),
            submitted_by: signer,
        };
        info!(target: "beacon", game = %id, verdict = %stats.verdict, micros, bytes = bytes.len(), "single step re-executed");
        let g = g.clone();
        self.log(&g).step = Some(stats);
        Ok(())
    }

    /// At the end of `slot`: runs the clocks, settles every ended game
    /// (slashing the loser), has the store discard what a won challenge
    /// proved invalid (voiding the games against it), and pays out due
    /// withdrawals.
    pub fn seal(&mut self, slot: u64, store: &mut impl RefereeStore) -> crate::Result<Sealed> {
        self.catch_up(store.sealed_head(), slot);
        self.refused_this_slot.clear();
        let mut out = Sealed::default();
        let ended: Vec<Hash> =
            self.open.iter_mut().filter_map(|(id, g)| g.game.tick(slot).is_some().then_some(*id)).collect();
        let reward = self.rules.reward_percent;
        for id in ended {
            // a game voided by an earlier resolution in this loop is gone
            let Some(mut g) = self.open.remove(&id) else { continue };
            let outcome = g.game.outcome().cloned().expect("ended");
            let winner = outcome.winner();
            let resolution = |restarted| Resolution {
                game: id,
                shard: g.shard,
                height: g.height,
                outcome: outcome.clone(),
                restarted,
            };
            if let (Side::Challenger, Some(s)) = (winner, g.acting) {
                // the acting stand-in's own claims lost, which proves nothing
                // about the header: it pays, and the game starts over
                out.resolutions.push(resolution(true));
                self.restart(g, s, &outcome, slot, store);
                continue;
            }
            out.resolutions.push(resolution(false));
            self.rejected_steps.retain(|(game, _), _| *game != id);
            let (w, l) = (g.party(winner), g.party(winner.other()));
            let bonds = &mut self.bonds;
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
                // its stakes were locked when this one opened by other
                // games on the same header or its descendants (all voided
                // by the discard below, whoever acts in them)
                // (colluders opening games they then throw would otherwise
                // hold the liar's bond, leaving this game's stake empty): the
                // shortfall comes from those games, which end void
                let mut short = self.rules.stake.saturating_sub(lost);
                for other in self.open.values_mut() {
                    if short == 0 {
                        break;
                    }
                    if other.shard == g.shard && other.height >= g.height && other.defender == l {
                        let take = other.stakes[0].min(short);
                        other.stakes[0] -= take;
                        short -= take;
                        let (r, t) = self.bonds.slash(&l, take, &w, reward);
                        (to_winner, to_treasury) = (to_winner + r, to_treasury + t);
                    }
                }
                // and from its bond when those games are gone (they ended
                // and returned what they held before this one did)
                if short > 0 {
                    let took = self.bonds.lock(&l, short);
                    let (r, t) = self.bonds.slash(&l, took, &w, reward);
                    (to_winner, to_treasury) = (to_winner + r, to_treasury + t);
                }
            }
            g.ended = Some((slot, Ending::Decided { outcome: outcome.clone() }));
            self.log(&g).slashed.push(BondMove {
                from: l,
                to: Some(w),
                reward_gwei: to_winner,
                treasury_gwei: to_treasury,
            });
            self.touched.insert(id);
            info!(target: "beacon", game = %id, shard = %g.shard, height = g.height, ?outcome, rounds = g.game.rounds, "dispute game ended");
            if winner == Side::Challenger {
                for inv in store.discard(g.shard, g.height, id, slot)? {
                    self.invalid_chain = bridge::chain_invalidation(&self.invalid_chain, &inv);
                    self.void_from(inv.shard, inv.height, slot);
                    out.invalidated.push(inv);
                }
            }
        }
        self.bonds.release(slot);
        Ok(out)
    }

    /// The acting stand-in `s` of game `g` lost: its stake is slashed (the
    /// winner's share to the challenger), and the game starts over against
    /// the header with the proposer defending again and fresh clocks. A
    /// proposer's wrong claims lose the header; a stand-in's lose only the
    /// stand-in's stake, so no shard-mate can frame an honest proposer.
    /// Each shard-mate stands in once per game, so a game has at most as
    /// many runs as its shard has validators besides the proposer.
    fn restart(
        &mut self,
        mut g: GameRecord,
        s: Address,
        outcome: &Outcome,
        slot: u64,
        store: &impl RefereeStore,
    ) {
        let (to_winner, to_treasury) =
            self.bonds.slash(&s, g.acting_stake, &g.challenger, self.rules.reward_percent);
        if let Some(h) = store.accepted(g.shard, g.height) {
            g.game = new_game(&self.rules.game, &h.header, g.items, g.receipt_item, slot);
        }
        (g.acting, g.acting_stake) = (None, 0);
        g.resets += 1;
        self.log(&g).slashed.push(BondMove {
            from: s,
            to: Some(g.challenger),
            reward_gwei: to_winner,
            treasury_gwei: to_treasury,
        });
        self.touched.insert(g.id);
        info!(target: "beacon", game = %g.id, stand_in = %s, ?outcome, resets = g.resets, "the acting stand-in lost: slashed, the game starts over");
        self.open.insert(g.id, g);
    }

    /// Ends every game against `shard`'s headers at `height` or above
    /// (discarded) with no winner: every stake returns.
    fn void_from(&mut self, shard: ShardId, height: u64, slot: u64) {
        let voided: Vec<Hash> =
            self.open.values().filter(|g| g.shard == shard && g.height >= height).map(|g| g.id).collect();
        for id in voided {
            let mut g = self.open.remove(&id).expect("listed");
            self.rejected_steps.retain(|(game, _), _| *game != id);
            self.bonds.unlock(&g.defender, g.stakes[0]);
            self.bonds.unlock(&g.challenger, g.stakes[1]);
            if let Some(s) = g.acting {
                self.bonds.unlock(&s, g.acting_stake);
            }
            g.ended = Some((slot, Ending::Void));
            self.log(&g);
            self.touched.insert(id);
        }
    }
}

/// A game against `h` (a block of `items`), from its first round: over
/// `c_0 … c_n` from the header's pre-state to its `trace_root`, or, against
/// item `j`'s receipt, over `c_0 … c_j` (`c_j` claimed later).
pub(crate) fn new_game(
    params: &GameParams,
    h: &ShardHeader,
    items: u64,
    item: Option<u64>,
    slot: u64,
) -> Game {
    let params = *params;
    let c0 = TraceCommitment::start(h.pre_state_root).hash();
    // a receipt game's `c_j` is the defender's to claim first
    let mut game = match item {
        Some(j) => Game::open_receipt(params, j, c0, slot),
        None => Game::open(params, items, c0, h.trace_root, slot),
    };
    if items == 0 {
        // no step to play: the empty trace is c_0, or the header lies
        let verdict =
            if h.trace_root == c0 { StepVerdict::Upheld } else { StepVerdict::Refuted { computed: None } };
        let _ = game.settle(&verdict, slot);
    }
    game
}

/// The typed rejection of a move the game's rules refused.
fn rejection(e: MoveError) -> MoveRejection {
    match e {
        MoveError::NotYourTurn(side) => MoveRejection::NotYourTurn { side },
        MoveError::Over => MoveRejection::GameOver,
        MoveError::WrongCount { got, want } => MoveRejection::WrongCount { got, want },
        MoveError::BadPick(index) => MoveRejection::BadPick { index },
        MoveError::BadLength(last) => MoveRejection::BadDescent(format!("a trace of {last} steps")),
    }
}

#[cfg(test)]
#[path = "referee_model.rs"]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    /// The persisted dispute state keeps each party's refused steps, so a
    /// beacon restart does not give it `MAX_REJECTED_STEPS` more
    /// re-executions (issue 15); a count the bytes cannot hold is refused.
    #[test]
    fn refused_step_counts_survive_a_restart() {
        let mut d = Referee::default();
        let (game, party) = (Hash::of(b"game"), Address([3; 20]));
        d.rejected_steps.insert((game, party), MAX_REJECTED_STEPS);
        d.rejected_steps.insert((Hash::of(b"other"), Address([4; 20])), 1);
        let bytes = d.encode();
        let back = Referee::decode(Rules::default(), &bytes, |_| None).unwrap();
        assert_eq!(back.rejected_steps, d.rejected_steps);
        assert_eq!(back.encode(), bytes, "one encoding");
        // a forged count past the input
        let mut forged = Referee::default().encode();
        let at = forged.len() - 4;
        forged[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Referee::decode(Rules::default(), &forged, |_| None).is_err());
    }
}
