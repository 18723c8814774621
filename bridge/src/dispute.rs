//! Disputes as the beacon records them: the signed moves parties send, the
//! games the beacon referees (the bonds at stake are in `bonds.rs`) and the headers a game
//! proved invalid. Pure data with canonical encodings; the rules that
//! apply moves live in the beacon, the step's re-execution in `prover`.

use serde::{Deserialize, Serialize};

use crate::Bonds;
use crate::game::{Game, Outcome, Side};
use crate::{
    Address, Decode, DecodeError, Encode, Frontier, Hash, MerkleProof, PrefixProof, ShardId, Signature,
    SignatureError, TraceCommitment, ValidatorKey, decode_list, encode_list, hash_domain,
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

/// Most games open at once, over all headers. A spec's bonds may stake at
/// most this many games at once (`ChainSpec::validate`), so no coalition
/// can fill it: what bounds the beacon's games is the stake they lock, and
/// there is no count per header for colluders to take.
pub const MAX_OPEN_GAMES: usize = 1024;

/// Most stand-ins one game can have had (a shard's validators, bounded
/// by any spec the decoder meets).
pub const MAX_STAND_INS: usize = 1024;

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
        /// The game's position this answers ([`GameRecord::position`]).
        at: Hash,
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
        /// The game's position this answers ([`GameRecord::position`]): a
        /// move is valid in exactly one state of one run of its game, so a
        /// replay of any published move, in a later round or after the game
        /// started over, is refused.
        at: Hash,
        /// The commitments, at `Game::points`.
        commitments: Vec<Hash>,
    },
    /// The challenger names the first posted sub-range it disputes.
    Pick {
        /// The game.
        game: Hash,
        /// The game's position this answers.
        at: Hash,
        /// The sub-range.
        index: u32,
    },
    /// Either side submits the single step (`prover::game::Step`, encoded).
    Step {
        /// The game.
        game: Hash,
        /// The game's position this answers.
        at: Hash,
        /// The encoded step.
        #[serde(with = "hex_bytes")]
        step: Vec<u8>,
    },
    /// The defender, at level 1's single step, descends into the item's
    /// own trace (`bridge::game::Descent`): its leaf, proven under the
    /// header's items root at the game's `lo`, and the trace's last index.
    Descend {
        /// The game.
        game: Hash,
        /// The game's position this answers.
        at: Hash,
        /// The item's leaf hash.
        item: Hash,
        /// Its inclusion proof under the header's items root.
        proof: MerkleProof,
        /// The item trace's last index `L` (`T_L = c_{lo+1}`).
        last: u64,
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
        self.in_game().map(|(game, _)| game)
    }

    /// The game position an in-game move answers
    /// ([`GameRecord::position`]; not for `Open` and `Withdraw`).
    pub fn position(&self) -> Option<Hash> {
        self.in_game().map(|(_, at)| at)
    }

    /// An in-game move's game and the position it answers.
    fn in_game(&self) -> Option<(Hash, Hash)> {
        match self {
            Action::Bisect { game, at, .. }
            | Action::Pick { game, at, .. }
            | Action::Step { game, at, .. }
            | Action::Descend { game, at, .. }
            | Action::Claim { game, at, .. } => Some((*game, *at)),
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
            Action::Descend { proof, .. } if proof.siblings.len() > 64 => {
                Err(DecodeError::Invalid("an items proof deeper than any tree"))
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
            Action::Descend { .. } => "descend",
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
            Action::Claim { game, at, commitment, receipts, proof } => {
                9u8.encode_to(out);
                game.encode_to(out);
                at.encode_to(out);
                commitment.encode_to(out);
                receipts.encode_to(out);
                proof.encode_to(out);
            }
            Action::Bisect { game, at, commitments } => {
                6u8.encode_to(out);
                game.encode_to(out);
                at.encode_to(out);
                encode_list(commitments, out);
            }
            Action::Pick { game, at, index } => {
                7u8.encode_to(out);
                game.encode_to(out);
                at.encode_to(out);
                index.encode_to(out);
            }
            Action::Step { game, at, step } => {
                8u8.encode_to(out);
                game.encode_to(out);
                at.encode_to(out);
                step.encode_to(out);
            }
            Action::Descend { game, at, item, proof, last } => {
                10u8.encode_to(out);
                game.encode_to(out);
                at.encode_to(out);
                item.encode_to(out);
                proof.encode_to(out);
                last.encode_to(out);
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
            9 => Action::Claim {
                game: Hash::decode(input)?,
                at: Hash::decode(input)?,
                commitment: TraceCommitment::decode(input)?,
                receipts: Frontier::decode(input)?,
                proof: PrefixProof::decode(input)?,
            },
            6 => {
                let (game, at) = (Hash::decode(input)?, Hash::decode(input)?);
                let a = Action::Bisect { game, at, commitments: decode_list(input)? };
                a.check_limits()?;
                a
            }
            7 => Action::Pick {
                game: Hash::decode(input)?,
                at: Hash::decode(input)?,
                index: u32::decode(input)?,
            },
            8 => {
                let (game, at) = (Hash::decode(input)?, Hash::decode(input)?);
                let step = Vec::<u8>::decode(input)?;
                if step.len() > MAX_STEP_BYTES {
                    return Err(DecodeError::TooLong {
                        what: "step",
                        len: step.len(),
                        limit: MAX_STEP_BYTES,
                    });
                }
                Action::Step { game, at, step }
            }
            10 => {
                let a = Action::Descend {
                    game: Hash::decode(input)?,
                    at: Hash::decode(input)?,
                    item: Hash::decode(input)?,
                    proof: MerkleProof::decode(input)?,
                    last: u64::decode(input)?,
                };
                a.check_limits()?;
                a
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
    /// Every shard-mate that has taken the defence over in this game, in
    /// order: each may do so once, so a game has at most one run more than
    /// its shard has validators besides the proposer (the bound on how
    /// long stand-ins can keep a header undecided).
    pub stood_in: Vec<Address>,
}

impl GameRecord {
    /// The exact state a move answers: the game, which run of it (`resets`),
    /// the disputed range and its end
    /// commitments, the round and the phase (with the posted commitments).
    /// Every accepted move changes it, and a restart changes it for good
    /// (`resets` only grows), so a signed move is valid once, in one run;
    /// clocks are left out so a move made on the last sealed state stays
    /// valid until the game moves.
    pub fn position(&self) -> Hash {
        let g = &self.game;
        let phase = g.phase.encode();
        hash_domain(
            b"optishard.game_position",
            &[
                &self.id.0,
                &self.resets.to_be_bytes(),
                &g.lo.to_be_bytes(),
                &g.hi.to_be_bytes(),
                &g.lo_commit.0,
                &g.hi_commit.0,
                &g.rounds.to_be_bytes(),
                &phase,
                &[g.level()],
            ],
        )
    }

    /// Whether the defender has claimed the game's `c_hi` (always, for a
    /// trace game; a receipt game starts in `Phase::Claim` with `c_hi`
    /// unset, zero, which no commitment hashes to; it stays so if the game
    /// ends unclaimed).
    pub fn claimed(&self) -> bool {
        self.receipt_item.is_none() || self.game.hi_commit != Hash::ZERO
    }

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

    /// Whether a shard-mate may take the defence over at `slot`: no
    /// stand-in acts yet, the proposer has let a quarter of a whole clock
    /// run on this turn, and at least half a whole clock is left. A
    /// stand-in so always inherits half a clock (what the contract assumes
    /// honest play needs); a proposer that spent its own clock below that
    /// cannot hand a drained defence to an honest shard-mate (it used to
    /// be "half of what is left", which a proposer moving just in time
    /// could shrink to a slot or two and leave the stand-in to lose on
    /// time).
    pub fn defender_overdue(&self, slot: u64) -> bool {
        let whole = self.game.params.clock_slots;
        let spent = slot.saturating_sub(self.game.turn_since);
        self.acting.is_none()
            && spent >= (whole / 4).max(1)
            && self.game.clocks[0].saturating_sub(spent) >= whole / 2
    }

    /// Whether `who` may take the defence over at `slot` as far as the game
    /// says: neither the proposer nor the challenger, never stood in in this
    /// game, and the proposer overdue. (That `who` validates the header's
    /// shard is the referee's to check, and the solver's to know.)
    pub fn may_stand_in(&self, who: &Address, slot: u64) -> bool {
        *who != self.challenger
            && *who != self.defender
            && !self.stood_in.contains(who)
            && self.defender_overdue(slot)
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
        encode_list(&self.stood_in, out);
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
            stood_in: {
                let v: Vec<Address> = decode_list(input)?;
                if v.len() > MAX_STAND_INS {
                    return Err(DecodeError::TooLong {
                        what: "stand-ins",
                        len: v.len(),
                        limit: MAX_STAND_INS,
                    });
                }
                v
            },
        })
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
        let m = SignedMove::sign(
            Action::Pick { game: Hash::of(b"g"), at: Hash::of(b"p"), index: 1 },
            &spec,
            &key,
        );
        assert_eq!(m.signer(&spec).unwrap(), key.address());
        assert_ne!(m.signer(&Hash::of(b"other net")).ok(), Some(key.address()));
        assert_eq!(decode_exact::<SignedMove>(&m.encode()).unwrap(), m);
        let mut forged = m.clone();
        forged.action = Action::Pick { game: Hash::of(b"g"), at: Hash::of(b"p"), index: 0 };
        assert_ne!(forged.signer(&spec).ok(), Some(key.address()));
        // oversized parts are refused by the decoder
        let big = Action::Step { game: Hash::ZERO, at: Hash::ZERO, step: vec![0; MAX_STEP_BYTES + 1] };
        assert!(matches!(decode_exact::<Action>(&big.encode()), Err(DecodeError::TooLong { .. })));
        let wide = Action::Bisect {
            game: Hash::ZERO,
            at: Hash::ZERO,
            commitments: vec![Hash::ZERO; MAX_BISECTION + 1],
        };
        assert!(decode_exact::<Action>(&wide.encode()).is_err());
    }

    /// A shard-mate may take over only inside an absolute window: after a
    /// quarter of a whole clock on the turn, while half a whole clock is
    /// left, so it always inherits half a clock. The old rule (half of
    /// what is left) let a proposer drain its clock to a few slots and
    /// hand that to an honest stand-in.
    #[test]
    fn a_stand_in_always_inherits_half_a_clock() {
        let mut g = Game::open(GameParams { k: 2, clock_slots: 16 }, 64, Hash::of(b"0"), Hash::of(b"n"), 0);
        let mut r = GameRecord {
            id: Hash::ZERO,
            shard: ShardId(0),
            height: 1,
            header: Hash::ZERO,
            items: 64,
            receipt_item: None,
            defender: Address([1; 20]),
            challenger: Address([2; 20]),
            opened_slot: 0,
            stakes: [1, 1],
            game: g.clone(),
            moves: 0,
            ended: None,
            acting: None,
            acting_stake: 0,
            resets: 0,
            stood_in: vec![],
        };
        // fresh clock: from a quarter (4) until half (8) is left
        assert!(!r.defender_overdue(3));
        assert!(r.defender_overdue(4) && r.defender_overdue(8));
        assert!(!r.defender_overdue(9), "less than half a clock would be left");
        // a proposer that spent its clock down to 3 slots hands nothing over
        g.clocks[0] = 3;
        r.game = g;
        assert!((0..10).all(|s| !r.defender_overdue(s)), "2 · 2 ≥ 3 was overdue under the old rule");
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
            stood_in: vec![Address([7; 20])],
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
