//! Disputes as the beacon records them: the signed moves parties send, the
//! games the beacon referees, the bonds at stake and the headers a game
//! proved invalid. Pure data with canonical encodings; the rules that
//! apply moves live in the beacon, the step's re-execution in `prover`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::game::{Game, Outcome, Side};
use crate::{
    Address, Decode, DecodeError, Encode, Frontier, Hash, PrefixProof, ShardId, Signature, SignatureError,
    TraceCommitment, ValidatorKey, decode_list, encode_list, hash_domain,
};

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(b)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s.strip_prefix("0x").unwrap_or(&s)).map_err(serde::de::Error::custom)
    }
}

/// Largest encoded single step (item, proof, witness) a move may carry.
/// Every item an honest block holds has a step below it: transactions are
/// at most 128 KiB and execution bounds each item's witness (the prover's
/// `WITNESS_BUDGET`).
pub const MAX_STEP_BYTES: usize = 512 << 10;
/// Most commitments one bisection posts (`dispute_k - 1`, and `k ≤ 64`).
pub const MAX_BISECTION: usize = 63;
/// Largest `dispute_k` a spec may name.
pub const MAX_DISPUTE_K: u64 = 64;

/// What a party asks of the beacon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Dispute the trace (`c_0 … c_n`) of an accepted, not yet final header.
    Open {
        /// Its shard.
        shard: ShardId,
        /// Its height.
        height: u64,
        /// Its hash (the game is against exactly this header).
        header: Hash,
        /// Dispute only the receipt of item `j` (1-based): the game is then
        /// over `c_0 … c_j`, `c_j` as the defender claims it first
        /// ([`Action::Claim`]), bound to the header's receipts.
        item: Option<u64>,
    },
    /// The defender's claim in a receipt game: `c_j`, with the receipts
    /// frontier behind it proven to be the first `j` receipts of the header.
    Claim {
        /// The game.
        game: Hash,
        /// The claimed `c_j`.
        commitment: TraceCommitment,
        /// The frontier of the first `j` receipts.
        receipts: Frontier,
        /// Its peaks' paths to the header's `receipts_root`.
        proof: PrefixProof,
    },
    /// The defender posts the commitments at the game's points.
    Bisect {
        /// The game.
        game: Hash,
        /// The round this answers (a replayed move of an earlier round fails).
        round: u32,
        /// The commitments, at `Game::points`.
        commitments: Vec<Hash>,
    },
    /// The challenger names the first posted sub-range it disputes.
    Pick {
        /// The game.
        game: Hash,
        /// The round this answers.
        round: u32,
        /// The sub-range.
        index: u32,
    },
    /// Either side submits the single step (`prover::game::Step`, encoded).
    Step {
        /// The game.
        game: Hash,
        /// The encoded step.
        #[serde(with = "hex_bytes")]
        step: Vec<u8>,
    },
    /// Starts withdrawing free bond; it is paid out one challenge window later.
    Withdraw {
        /// Gwei to withdraw.
        amount_gwei: u64,
        /// The party's count of withdrawals so far (a replayed withdrawal
        /// names a spent count and is refused).
        nonce: u64,
    },
}

impl Action {
    /// The game a move plays in (not for `Open` and `Withdraw`).
    pub fn game(&self) -> Option<Hash> {
        match self {
            Action::Bisect { game, .. }
            | Action::Pick { game, .. }
            | Action::Step { game, .. }
            | Action::Claim { game, .. } => Some(*game),
            Action::Open { .. } | Action::Withdraw { .. } => None,
        }
    }

    /// Checks the size limits every decoder enforces (a move built any
    /// other way, e.g. from JSON, must pass them too).
    pub fn check_limits(&self) -> Result<(), DecodeError> {
        match self {
            Action::Bisect { commitments, .. } if commitments.len() > MAX_BISECTION => {
                Err(DecodeError::TooLong { what: "bisection", len: commitments.len(), limit: MAX_BISECTION })
            }
            Action::Step { step, .. } if step.len() > MAX_STEP_BYTES => {
                Err(DecodeError::TooLong { what: "step", len: step.len(), limit: MAX_STEP_BYTES })
            }
            Action::Claim { receipts, proof, .. }
                if !receipts.is_well_formed()
                    || proof.paths.len() > 64
                    || proof.paths.iter().any(|p| p.len() > 64) =>
            {
                Err(DecodeError::Invalid("claim larger than any tree"))
            }
            _ => Ok(()),
        }
    }

    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Action::Open { .. } => "open",
            Action::Claim { .. } => "claim",
            Action::Bisect { .. } => "bisect",
            Action::Pick { .. } => "pick",
            Action::Step { .. } => "step",
            Action::Withdraw { .. } => "withdraw",
        }
    }
}

impl Encode for Action {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Action::Open { shard, height, header, item } => {
                0u8.encode_to(out);
                shard.encode_to(out);
                height.encode_to(out);
                header.encode_to(out);
                item.encode_to(out);
            }
            Action::Claim { game, commitment, receipts, proof } => {
                5u8.encode_to(out);
                game.encode_to(out);
                commitment.encode_to(out);
                receipts.encode_to(out);
                proof.encode_to(out);
            }
            Action::Bisect { game, round, commitments } => {
                1u8.encode_to(out);
                game.encode_to(out);
                round.encode_to(out);
                encode_list(commitments, out);
            }
            Action::Pick { game, round, index } => {
                2u8.encode_to(out);
                game.encode_to(out);
                round.encode_to(out);
                index.encode_to(out);
            }
            Action::Step { game, step } => {
                3u8.encode_to(out);
                game.encode_to(out);
                step.encode_to(out);
            }
            Action::Withdraw { amount_gwei, nonce } => {
                4u8.encode_to(out);
                amount_gwei.encode_to(out);
                nonce.encode_to(out);
            }
        }
    }
}

impl Decode for Action {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(match u8::decode(input)? {
            0 => Action::Open {
                shard: ShardId::decode(input)?,
                height: u64::decode(input)?,
                header: Hash::decode(input)?,
                item: Option::<u64>::decode(input)?,
            },
            5 => Action::Claim {
                game: Hash::decode(input)?,
                commitment: TraceCommitment::decode(input)?,
                receipts: Frontier::decode(input)?,
                proof: PrefixProof::decode(input)?,
            },
            1 => {
                let (game, round) = (Hash::decode(input)?, u32::decode(input)?);
                let a = Action::Bisect { game, round, commitments: decode_list(input)? };
                a.check_limits()?;
                a
            }
            2 => Action::Pick {
                game: Hash::decode(input)?,
                round: u32::decode(input)?,
                index: u32::decode(input)?,
            },
            3 => {
                let game = Hash::decode(input)?;
                let step = Vec::<u8>::decode(input)?;
                if step.len() > MAX_STEP_BYTES {
                    return Err(DecodeError::TooLong {
                        what: "step",
                        len: step.len(),
                        limit: MAX_STEP_BYTES,
                    });
                }
                Action::Step { game, step }
            }
            4 => Action::Withdraw { amount_gwei: u64::decode(input)?, nonce: u64::decode(input)? },
            tag => return Err(DecodeError::InvalidTag { what: "dispute action", tag }),
        })
    }
}

/// A move signed by its party, bound to one network (the spec hash is part
/// of what is signed, so a move cannot be replayed on another network).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMove {
    /// What is asked.
    pub action: Action,
    /// The party's signature over [`SignedMove::digest`].
    pub signature: Signature,
}

impl SignedMove {
    /// What a party signs: the network and the action.
    pub fn digest(spec: &Hash, action: &Action) -> Hash {
        hash_domain(b"optishard.dispute_move", &[&spec.0, &action.encode()])
    }

    /// Signs `action` for the network `spec`.
    pub fn sign(action: Action, spec: &Hash, key: &ValidatorKey) -> Self {
        let signature = key.sign(&Self::digest(spec, &action));
        SignedMove { action, signature }
    }

    /// Who signed it.
    pub fn signer(&self, spec: &Hash) -> Result<Address, SignatureError> {
        self.signature.recover(&Self::digest(spec, &self.action))
    }

    /// The move's identity (signature included: two parties' equal moves differ).
    pub fn hash(&self) -> Hash {
        hash_domain(b"optishard.signed_move", &[&self.encode()])
    }
}

impl Encode for SignedMove {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.action.encode_to(out);
        self.signature.encode_to(out);
    }
}

impl Decode for SignedMove {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(SignedMove { action: Action::decode(input)?, signature: Signature::decode(input)? })
    }
}

/// The id of the game `challenger` opens against `header` (its trace, or
/// the receipt of `item`): one game per challenger, header and target.
pub fn game_id(header: &Hash, challenger: &Address, item: Option<u64>) -> Hash {
    match item {
        None => hash_domain(b"optishard.game", &[&header.0, &challenger.0]),
        Some(j) => hash_domain(b"optishard.receipt_game", &[&header.0, &challenger.0, &j.to_be_bytes()]),
    }
}

/// How a game ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "ending")]
pub enum Ending {
    /// Played out (a step, or a clock).
    Decided {
        /// The outcome.
        outcome: Outcome,
    },
    /// Ended without a winner: another game proved the header invalid (or
    /// an ancestor's invalidity discarded it). Both stakes are returned.
    Void,
}

/// One game as the beacon keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameRecord {
    /// Its id ([`game_id`]).
    pub id: Hash,
    /// The disputed header's shard.
    pub shard: ShardId,
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub header: Hash,
    /// Items in the disputed block (`n` of `c_0 … c_n`).
    pub items: u64,
    /// A receipt game: the item `j` whose receipt is disputed (the game is
    /// over `c_0 … c_j`).
    pub receipt_item: Option<u64>,
    /// Whether the defender has claimed `c_j` (always, for a trace game).
    pub claimed: bool,
    /// Who defends (the header's proposer).
    pub defender: Address,
    /// Who disputes.
    pub challenger: Address,
    /// The beacon slot it opened in.
    pub opened_slot: u64,
    /// Stakes locked: `[defender, challenger]`, in gwei.
    pub stakes: [u64; 2],
    /// The game's state.
    pub game: Game,
    /// Moves applied.
    pub moves: u32,
    /// How and when it ended (`None`: open).
    pub ended: Option<(u64, Ending)>,
    /// A shard-mate that took the defence over from a proposer that let
    /// half its clock run: it plays the defender's side from then on, on
    /// its own stake ([`GameRecord::acting_stake`]).
    pub acting: Option<Address>,
    /// The stake the acting stand-in locked.
    pub acting_stake: u64,
    /// Times the game started over because an acting stand-in lost it:
    /// the stand-in's claims were wrong, which says nothing of the header.
    pub resets: u32,
}

impl GameRecord {
    /// Whether it is still being played.
    pub fn is_open(&self) -> bool {
        self.ended.is_none()
    }

    /// The party playing `side` (for the defender, the acting stand-in
    /// once one took over).
    pub fn party(&self, side: Side) -> Address {
        match side {
            Side::Defender => self.acting.unwrap_or(self.defender),
            Side::Challenger => self.challenger,
        }
    }

    /// Whether the proposer has let half its clock run on this turn by
    /// `slot` with no stand-in acting yet: from then on a shard-mate may
    /// take the defence over.
    pub fn defender_overdue(&self, slot: u64) -> bool {
        self.acting.is_none()
            && slot.saturating_sub(self.game.turn_since).saturating_mul(2) >= self.game.clocks[0]
    }

    /// The side `who` plays, if any.
    pub fn side_of(&self, who: &Address) -> Option<Side> {
        if *who == self.party(Side::Defender) {
            Some(Side::Defender)
        } else if *who == self.challenger {
            Some(Side::Challenger)
        } else {
            None
        }
    }
}

impl Encode for Ending {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Ending::Decided { outcome } => {
                0u8.encode_to(out);
                outcome.encode_to(out);
            }
            Ending::Void => 1u8.encode_to(out),
        }
    }
}

impl Decode for Ending {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(Ending::Decided { outcome: Outcome::decode(input)? }),
            1 => Ok(Ending::Void),
            tag => Err(DecodeError::InvalidTag { what: "game ending", tag }),
        }
    }
}

impl Encode for GameRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.id.encode_to(out);
        self.shard.encode_to(out);
        self.height.encode_to(out);
        self.header.encode_to(out);
        self.items.encode_to(out);
        self.receipt_item.encode_to(out);
        self.claimed.encode_to(out);
        self.defender.encode_to(out);
        self.challenger.encode_to(out);
        self.opened_slot.encode_to(out);
        self.stakes[0].encode_to(out);
        self.stakes[1].encode_to(out);
        self.game.encode_to(out);
        self.moves.encode_to(out);
        match &self.ended {
            None => 0u8.encode_to(out),
            Some((slot, e)) => {
                1u8.encode_to(out);
                slot.encode_to(out);
                e.encode_to(out);
            }
        }
        self.acting.encode_to(out);
        self.acting_stake.encode_to(out);
        self.resets.encode_to(out);
    }
}

impl Decode for GameRecord {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(GameRecord {
            id: Hash::decode(input)?,
            shard: ShardId::decode(input)?,
            height: u64::decode(input)?,
            header: Hash::decode(input)?,
            items: u64::decode(input)?,
            receipt_item: Option::<u64>::decode(input)?,
            claimed: bool::decode(input)?,
            defender: Address::decode(input)?,
            challenger: Address::decode(input)?,
            opened_slot: u64::decode(input)?,
            stakes: [u64::decode(input)?, u64::decode(input)?],
            game: Game::decode(input)?,
            moves: u32::decode(input)?,
            ended: match u8::decode(input)? {
                0 => None,
                1 => Some((u64::decode(input)?, Ending::decode(input)?)),
                tag => return Err(DecodeError::InvalidTag { what: "game ended", tag }),
            },
            acting: Option::<Address>::decode(input)?,
            acting_stake: u64::decode(input)?,
            resets: u32::decode(input)?,
        })
    }
}

/// One party's bond, in gwei.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bond {
    /// Free to stake in a game or withdraw.
    pub free: u64,
    /// Staked in open games.
    pub locked: u64,
    /// Being withdrawn: `(amount, slot it is paid out)`.
    pub withdrawing: Vec<(u64, u64)>,
    /// Paid out by withdrawals so far.
    pub withdrawn: u64,
    /// Lost in games so far.
    pub slashed: u64,
    /// Won from other parties' stakes so far.
    pub rewarded: u64,
    /// Withdrawals started so far (the next `Withdraw` names this count).
    pub withdrawals: u64,
}

impl Encode for Bond {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.free.encode_to(out);
        self.locked.encode_to(out);
        (self.withdrawing.len() as u32).encode_to(out);
        for (a, s) in &self.withdrawing {
            a.encode_to(out);
            s.encode_to(out);
        }
        self.withdrawn.encode_to(out);
        self.slashed.encode_to(out);
        self.rewarded.encode_to(out);
        self.withdrawals.encode_to(out);
    }
}

impl Decode for Bond {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let free = u64::decode(input)?;
        let locked = u64::decode(input)?;
        let n = u32::decode(input)? as usize;
        let mut withdrawing = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            withdrawing.push((u64::decode(input)?, u64::decode(input)?));
        }
        Ok(Bond {
            free,
            locked,
            withdrawing,
            withdrawn: u64::decode(input)?,
            slashed: u64::decode(input)?,
            rewarded: u64::decode(input)?,
            withdrawals: u64::decode(input)?,
        })
    }
}

/// Every bond and the treasury: what slashing pays into and out of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bonds {
    /// Bonds by party.
    pub parties: BTreeMap<Address, Bond>,
    /// Slashed stakes not paid to a winner.
    pub treasury: u64,
}

impl Bonds {
    /// The genesis bonds.
    pub fn genesis(parties: impl IntoIterator<Item = (Address, u64)>) -> Self {
        let mut b = Bonds::default();
        for (a, gwei) in parties {
            b.parties.entry(a).or_default().free += gwei;
        }
        b
    }

    /// Total gwei held: free, locked, being withdrawn, paid out, and the
    /// treasury (constant: slashing moves value, never creates it).
    pub fn total(&self) -> u128 {
        let parties: u128 = self
            .parties
            .values()
            .map(|b| {
                u128::from(b.free)
                    + u128::from(b.locked)
                    + b.withdrawing.iter().map(|(a, _)| u128::from(*a)).sum::<u128>()
                    + u128::from(b.withdrawn)
            })
            .sum();
        parties + u128::from(self.treasury)
    }

    /// Locks up to `amount` of `who`'s bond: free first, then what it is
    /// still withdrawing (a withdrawal does not escape a game opened before
    /// it is paid out). Returns what was locked.
    pub fn lock(&mut self, who: &Address, amount: u64) -> u64 {
        let Some(b) = self.parties.get_mut(who) else { return 0 };
        let mut n = amount.min(b.free);
        b.free -= n;
        while n < amount {
            let Some((a, at)) = b.withdrawing.pop() else { break };
            let take = a.min(amount - n);
            if a > take {
                b.withdrawing.push((a - take, at));
            }
            n += take;
        }
        b.locked += n;
        n
    }

    /// Whether `who`'s bond (free and staked) covers `stake`.
    pub fn covers(&self, who: &Address, stake: u64) -> bool {
        self.parties.get(who).is_some_and(|b| b.free.saturating_add(b.locked) >= stake)
    }

    /// Returns a locked stake to its owner.
    pub fn unlock(&mut self, who: &Address, amount: u64) {
        if let Some(b) = self.parties.get_mut(who) {
            let n = amount.min(b.locked);
            b.locked -= n;
            b.free += n;
        }
    }

    /// Slashes `loser`'s locked `stake`: `reward_percent` of it to
    /// `winner`'s free bond, the rest to the treasury. Returns (reward, to treasury).
    pub fn slash(
        &mut self,
        loser: &Address,
        stake: u64,
        winner: &Address,
        reward_percent: u64,
    ) -> (u64, u64) {
        let Some(b) = self.parties.get_mut(loser) else { return (0, 0) };
        let n = stake.min(b.locked);
        b.locked -= n;
        b.slashed += n;
        let reward = (u128::from(n) * u128::from(reward_percent.min(100)) / 100) as u64;
        let w = self.parties.entry(*winner).or_default();
        w.free += reward;
        w.rewarded += reward;
        self.treasury += n - reward;
        (reward, n - reward)
    }

    /// Starts withdrawing `amount` of `who`'s free bond, paid at `release`;
    /// `nonce` must be the party's count of withdrawals so far.
    pub fn withdraw(&mut self, who: &Address, amount: u64, nonce: u64, release: u64) -> Result<(), String> {
        let b = self.parties.get_mut(who).ok_or_else(|| format!("{who} has no bond"))?;
        if nonce != b.withdrawals {
            return Err(format!("withdrawal {nonce} of {who}: the next is {}", b.withdrawals));
        }
        if amount == 0 || amount > b.free {
            return Err(format!("cannot withdraw {amount} gwei of {} free", b.free));
        }
        b.free -= amount;
        b.withdrawals += 1;
        match b.withdrawing.last_mut() {
            Some((a, at)) if *at == release => *a += amount,
            _ => b.withdrawing.push((amount, release)),
        }
        Ok(())
    }

    /// Moves every pending withdrawal `slots` later (the beacon paused:
    /// windows are longer by that much, and a withdrawal must not pay out
    /// before a game on its owner's headers can still open).
    pub fn postpone(&mut self, slots: u64) {
        for b in self.parties.values_mut() {
            for (_, at) in &mut b.withdrawing {
                *at = at.saturating_add(slots);
            }
        }
    }

    /// Pays out every withdrawal due by `slot`.
    pub fn release(&mut self, slot: u64) {
        for b in self.parties.values_mut() {
            let due: u64 = b.withdrawing.iter().filter(|(_, at)| *at <= slot).map(|(a, _)| *a).sum();
            if due > 0 {
                b.withdrawing.retain(|(_, at)| *at > slot);
                b.withdrawn += due;
            }
        }
    }
}

impl Encode for Bonds {
    fn encode_to(&self, out: &mut Vec<u8>) {
        (self.parties.len() as u32).encode_to(out);
        for (a, b) in &self.parties {
            a.encode_to(out);
            b.encode_to(out);
        }
        self.treasury.encode_to(out);
    }
}

impl Decode for Bonds {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let n = u32::decode(input)? as usize;
        let mut parties = BTreeMap::new();
        for _ in 0..n {
            let a = Address::decode(input)?;
            parties.insert(a, Bond::decode(input)?);
        }
        Ok(Bonds { parties, treasury: u64::decode(input)? })
    }
}

/// A header a game proved invalid, or one discarded with it: its
/// descendants, and (a cascade) destination headers that consumed messages
/// of a discarded header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    /// The shard.
    pub shard: ShardId,
    /// The first discarded height: it and everything above it on the shard
    /// are gone; the shard continues from `height - 1`.
    pub height: u64,
    /// The discarded header at `height`.
    pub header: Hash,
    /// The game that proved fraud (in the header itself, or upstream).
    pub game: Hash,
    /// For a cascade: the discarded source header whose messages it consumed.
    pub cause: Option<(ShardId, u64)>,
}

impl Encode for Invalidation {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.shard.encode_to(out);
        self.height.encode_to(out);
        self.header.encode_to(out);
        self.game.encode_to(out);
        match self.cause {
            None => 0u8.encode_to(out),
            Some((s, h)) => {
                1u8.encode_to(out);
                s.encode_to(out);
                h.encode_to(out);
            }
        }
    }
}

impl Decode for Invalidation {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(Invalidation {
            shard: ShardId::decode(input)?,
            height: u64::decode(input)?,
            header: Hash::decode(input)?,
            game: Hash::decode(input)?,
            cause: match u8::decode(input)? {
                0 => None,
                1 => Some((ShardId::decode(input)?, u64::decode(input)?)),
                tag => return Err(DecodeError::InvalidTag { what: "invalidation cause", tag }),
            },
        })
    }
}

/// The root of the dispute part of the beacon state: open games, bonds,
/// the chain of every invalidation so far, and the beacon's pauses.
pub fn disputes_root<'a>(
    open: impl IntoIterator<Item = &'a GameRecord>,
    bonds: &Bonds,
    invalid: &Hash,
    pauses: &crate::Pauses,
) -> Hash {
    let games: Vec<Hash> =
        open.into_iter().map(|g| hash_domain(b"optishard.game_record", &[&g.encode()])).collect();
    hash_domain(
        b"optishard.disputes",
        &[&crate::merkle_root(&games).0, &bonds.encode(), &invalid.0, &pauses.encode()],
    )
}

/// Extends the invalidation chain by `inv`.
pub fn chain_invalidation(prev: &Hash, inv: &Invalidation) -> Hash {
    hash_domain(b"optishard.invalidations", &[&prev.0, &inv.encode()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_exact;
    use crate::game::GameParams;

    #[test]
    fn moves_are_bound_to_their_signer_and_network() {
        let key = ValidatorKey::derive(b"challenger");
        let spec = Hash::of(b"net");
        let m = SignedMove::sign(Action::Pick { game: Hash::of(b"g"), round: 2, index: 1 }, &spec, &key);
        assert_eq!(m.signer(&spec).unwrap(), key.address());
        assert_ne!(m.signer(&Hash::of(b"other net")).ok(), Some(key.address()));
        assert_eq!(decode_exact::<SignedMove>(&m.encode()).unwrap(), m);
        let mut forged = m.clone();
        forged.action = Action::Pick { game: Hash::of(b"g"), round: 2, index: 0 };
        assert_ne!(forged.signer(&spec).ok(), Some(key.address()));
        // oversized parts are refused by the decoder
        let big = Action::Step { game: Hash::ZERO, step: vec![0; MAX_STEP_BYTES + 1] };
        assert!(matches!(decode_exact::<Action>(&big.encode()), Err(DecodeError::TooLong { .. })));
        let wide =
            Action::Bisect { game: Hash::ZERO, round: 0, commitments: vec![Hash::ZERO; MAX_BISECTION + 1] };
        assert!(decode_exact::<Action>(&wide.encode()).is_err());
    }

    #[test]
    fn slashing_moves_value_and_never_creates_it() {
        let (a, b) = (Address([1; 20]), Address([2; 20]));
        let mut bonds = Bonds::genesis([(a, 1000), (b, 500)]);
        let total = bonds.total();
        assert_eq!(bonds.lock(&a, 300), 300);
        assert_eq!(bonds.lock(&b, 800), 500, "locks no more than is free");
        assert_eq!(bonds.slash(&b, 500, &a, 40), (200, 300));
        bonds.unlock(&a, 300);
        assert_eq!(bonds.parties[&a].free, 1200);
        assert_eq!(bonds.parties[&b].slashed, 500);
        assert_eq!(bonds.treasury, 300);
        assert_eq!(bonds.total(), total);
        // challenging oneself never pays: the treasury keeps its share
        let mut own = Bonds::genesis([(a, 1000)]);
        own.lock(&a, 100);
        own.slash(&a, 100, &a, 50);
        assert_eq!(own.parties[&a].free, 950);
        bonds.withdraw(&a, 200, 0, 10).unwrap();
        assert!(bonds.withdraw(&a, 200, 0, 10).is_err(), "a replayed withdrawal");
        assert!(bonds.withdraw(&a, 5000, 1, 10).is_err());
        // a withdrawal still pending is at stake in a game opened meanwhile
        let mut pending = Bonds::genesis([(b, 100)]);
        pending.withdraw(&b, 100, 0, 50).unwrap();
        assert_eq!(pending.lock(&b, 30), 30);
        assert_eq!(pending.parties[&b].withdrawing, vec![(70, 50)]);
        assert_eq!(pending.total(), 100);
        bonds.release(9);
        assert_eq!(bonds.parties[&a].withdrawn, 0);
        bonds.release(10);
        assert_eq!(bonds.parties[&a].withdrawn, 200);
        assert_eq!(bonds.total(), total);
    }

    #[test]
    fn records_round_trip() {
        let g = Game::open(GameParams { k: 4, clock_slots: 8 }, 17, Hash::of(b"0"), Hash::of(b"n"), 3);
        let r = GameRecord {
            id: game_id(&Hash::of(b"h"), &Address([9; 20]), None),
            shard: ShardId(1),
            height: 4,
            header: Hash::of(b"h"),
            items: 17,
            receipt_item: Some(3),
            claimed: false,
            defender: Address([8; 20]),
            challenger: Address([9; 20]),
            opened_slot: 3,
            stakes: [10, 10],
            game: g,
            moves: 0,
            ended: Some((9, Ending::Void)),
            acting: Some(Address([7; 20])),
            acting_stake: 10,
            resets: 1,
        };
        assert_eq!(decode_exact::<GameRecord>(&r.encode()).unwrap(), r);
        let inv = Invalidation {
            shard: ShardId(2),
            height: 5,
            header: Hash::of(b"x"),
            game: r.id,
            cause: Some((ShardId(1), 4)),
        };
        assert_eq!(decode_exact::<Invalidation>(&inv.encode()).unwrap(), inv);
    }
}
