//! The single step of the dispute game: an item, its inclusion proof and
//! its witness, re-executed statelessly by the referee ([`verify_step`]).
//! The game's bookkeeping (k-section, clocks, outcomes) is pure logic
//! shared with the beacon and lives in `bridge::game`; it is re-exported
//! here.

pub use bridge::game::*;
use bridge::{Hash, MerkleProof};

use crate::Error;
use crate::exec::{BlockParams, Item};
use crate::witness::{Witness, execute_stateless};

/// A submitted single step: item `index + 1` of the block (position
/// `index` among its items, 0-based), its proof against the header's
/// `items_root`, and its witness.
#[derive(Clone, Debug)]
pub struct Step {
    /// Position of the item (the step goes from `c_index` to `c_{index+1}`).
    pub index: u64,
    /// The item.
    pub item: Item,
    /// Its inclusion proof.
    pub proof: MerkleProof,
    /// Its witness, starting at `c_index`.
    pub witness: Witness,
}

/// The single step re-executed statelessly: the witness must start at the
/// agreed `agreed` (= `c_index`'s hash), and every block hash it carries
/// for `BLOCKHASH` must be the referee's own (`block_hash`: the accepted
/// header chain, not the witness, says what a height's hash is); the
/// result is compared with the defender's `claimed` (= `c_{index+1}`'s hash).
pub fn verify_step(
    params: &BlockParams,
    items_root: &Hash,
    step: &Step,
    agreed: &Hash,
    claimed: &Hash,
    block_hash: &dyn Fn(u64) -> Option<alloy_primitives::B256>,
) -> StepVerdict {
    let Step { index, item, proof, witness } = step;
    let index = *index;
    if proof.index != index || proof.verify(items_root, &item.item_hash()).is_err() {
        return StepVerdict::Rejected(format!("item {index} is not at that position under the items root"));
    }
    if witness.pre.hash() != *agreed {
        return StepVerdict::Rejected("the witness does not start at the agreed commitment".into());
    }
    if let Some((n, _)) = witness.block_hashes.iter().find(|(n, h)| block_hash(*n) != Some(*h)) {
        return StepVerdict::Rejected(format!("the witness's hash of block {n} is not the header chain's"));
    }
    match execute_stateless(params, item, witness) {
        Ok((post, _)) if post.hash() == *claimed => StepVerdict::Upheld,
        Ok((post, _)) => StepVerdict::Refuted { computed: Some(post) },
        Err(Error::InvalidTransaction { .. }) => StepVerdict::Refuted { computed: None },
        Err(e) => StepVerdict::Rejected(e.to_string()),
    }
}

/// A block item that does not decode as a transaction: its raw bytes, at
/// `index`, proven under the items root. No valid block holds it, so its
/// step refutes any claim past it without re-executing anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndecodableStep {
    /// Position of the item.
    pub index: u64,
    /// Its raw bytes as the block carries them.
    pub raw: Vec<u8>,
    /// Its inclusion proof (leaf: `bridge::tx_item_hash(raw)`).
    pub proof: MerkleProof,
}

/// The tag an undecodable item carries in a step's encoding.
const UNDECODABLE: u8 = 2;

impl UndecodableStep {
    /// The canonical encoding (a step whose item tag says "undecodable").
    pub fn encode(&self) -> Vec<u8> {
        use bridge::Encode;
        let mut out = Vec::new();
        self.index.encode_to(&mut out);
        UNDECODABLE.encode_to(&mut out);
        self.raw.encode_to(&mut out);
        self.proof.encode_to(&mut out);
        out
    }

    /// Its verdict: the raw bytes must sit at `index` under `items_root`
    /// and must not decode (a decodable item takes a real step).
    pub fn verify(&self, items_root: &Hash) -> StepVerdict {
        let index = self.index;
        if self.proof.index != index
            || self.proof.verify(items_root, &bridge::tx_item_hash(&self.raw)).is_err()
        {
            return StepVerdict::Rejected(format!(
                "item {index} is not at that position under the items root"
            ));
        }
        match crate::SignedTx::decode(&self.raw) {
            Ok(_) => StepVerdict::Rejected("the item decodes: its step must execute it".into()),
            Err(_) => StepVerdict::Refuted { computed: None },
        }
    }
}

/// What a `Step` move carries.
#[derive(Clone, Debug)]
pub enum AnyStep {
    /// An item re-executed from its witness.
    Item(Step),
    /// An item that does not decode.
    Undecodable(UndecodableStep),
    /// A step of the item's level-2 trace.
    Machine(Box<MachineStep>),
}

impl AnyStep {
    /// Decodes any kind of step.
    pub fn decode(bytes: &[u8]) -> Result<AnyStep, bridge::DecodeError> {
        use bridge::Decode;
        let mut input = bytes;
        let index = u64::decode(&mut input)?;
        match u8::decode(&mut input)? {
            UNDECODABLE => {}
            MACHINE => return MachineStep::decode(index, input).map(|m| AnyStep::Machine(Box::new(m))),
            _ => return Step::decode(bytes).map(AnyStep::Item),
        }
        let raw = Vec::<u8>::decode(&mut input)?;
        let proof = MerkleProof::decode(&mut input)?;
        if !input.is_empty() {
            return Err(bridge::DecodeError::TrailingBytes(input.len()));
        }
        Ok(AnyStep::Undecodable(UndecodableStep { index, raw, proof }))
    }

    /// The step's position in its level's range.
    pub fn index(&self) -> u64 {
        match self {
            AnyStep::Item(s) => s.index,
            AnyStep::Undecodable(u) => u.index,
            AnyStep::Machine(m) => m.index,
        }
    }
}

/// The tag a level-2 step carries in a step's encoding.
const MACHINE: u8 = 3;

/// A step of an item's level-2 trace as a `Step` move carries it: its
/// index `j` in the trace (from `T_j` to `T_{j+1}`), `c_lo` in full (the
/// trace before the item, whose hash level 1 agreed), the item (a raw
/// transaction or a call message: its leaf is the descent's) and the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineStep {
    /// `j`.
    pub index: u64,
    /// `c_lo`.
    pub pre: bridge::TraceCommitment,
    /// The item: a transaction as the block carries it, or a call message.
    pub item: crate::Item,
    /// The step.
    pub step: crate::machine::ItemStep,
}

impl MachineStep {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        use bridge::Encode;
        let mut out = Vec::new();
        self.index.encode_to(&mut out);
        MACHINE.encode_to(&mut out);
        self.pre.encode_to(&mut out);
        self.item.encode_to(&mut out);
        self.step.encode_to(&mut out);
        out
    }

    fn decode(index: u64, mut input: &[u8]) -> Result<MachineStep, bridge::DecodeError> {
        use bridge::Decode;
        let input = &mut input;
        let pre = bridge::TraceCommitment::decode(input)?;
        let item = crate::Item::decode(input)?;
        let step = crate::machine::ItemStep::decode(input)?;
        if !input.is_empty() {
            return Err(bridge::DecodeError::TrailingBytes(input.len()));
        }
        Ok(MachineStep { index, pre, item, step })
    }
}

/// An item as a step carries it: tag 0 and a transaction's raw bytes
/// (at most [`crate::MAX_TX_BYTES`]), or tag 1 and a message.
impl bridge::Encode for crate::Item {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            crate::Item::Tx(tx) => {
                0u8.encode_to(out);
                tx.raw.to_vec().encode_to(out);
            }
            crate::Item::Message(m) => {
                1u8.encode_to(out);
                m.encode_to(out);
            }
        }
    }
}

impl bridge::Decode for crate::Item {
    /// Decodes an item; a transaction that does not decode is an error
    /// (a step of it proves nothing).
    fn decode(input: &mut &[u8]) -> Result<Self, bridge::DecodeError> {
        use bridge::DecodeError;
        match u8::decode(input)? {
            0 => {
                let n = u32::decode(input)? as usize;
                if n > crate::MAX_TX_BYTES {
                    return Err(DecodeError::TooLong {
                        what: "transaction",
                        len: n,
                        limit: crate::MAX_TX_BYTES,
                    });
                }
                if input.len() < n {
                    return Err(DecodeError::UnexpectedEnd { what: "transaction", needed: n - input.len() });
                }
                let (raw, rest) = input.split_at(n);
                *input = rest;
                let tx = crate::SignedTx::decode(raw).map_err(|_| DecodeError::Invalid("transaction"))?;
                Ok(crate::Item::Tx(tx))
            }
            1 => Ok(crate::Item::Message(bridge::Message::decode(input)?)),
            tag => Err(DecodeError::InvalidTag { what: "step item", tag }),
        }
    }
}

/// What the referee knows when it re-executes a step: the header's block
/// parameters and items root, and the header chain's block hashes.
pub struct StepContext<'a> {
    /// The block's parameters.
    pub params: &'a BlockParams,
    /// The header's items root.
    pub items_root: &'a Hash,
    /// The hash of a block below the header, by the beacon's header chain.
    pub block_hash: &'a dyn Fn(u64) -> Option<alloy_primitives::B256>,
}

/// What re-executing a step found.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The verdict (`Rejected`: it proves nothing).
    pub verdict: StepVerdict,
    /// The level it decides at: 1 (a whole item: the game ends whatever
    /// its phase once descended) or 2 (one step of the item's trace).
    pub level: u8,
    /// Its position in its level's range.
    pub index: u64,
    /// Its witness's encoded size (level 1).
    pub witness_bytes: usize,
    /// A level-2 instruction's pc, opcode, depth and name (with the part a
    /// sub-step does: [`crate::machine::step_name`]).
    pub instruction: Option<(u64, u8, u64, String)>,
}

/// A machine a game's level bisects, and its one-step verifier: the seeds'
/// fault-proof framework, where the game (`bridge::game`) is the same for
/// every level and the machine is pluggable. `stf_version` names the set.
pub trait StepMachine {
    /// Its level in the game.
    const LEVEL: u8;
    /// Its step.
    type Step;
    /// Re-executes `step` from the game's agreed state against its claim.
    fn verify(ctx: &StepContext<'_>, game: &Game, step: &Self::Step) -> StepVerdict;
}

/// Level 1: a block's items, `c_0 … c_n`; a step re-executes one whole
/// item from its witness.
pub struct Items;

impl StepMachine for Items {
    const LEVEL: u8 = 1;
    type Step = Step;

    fn verify(ctx: &StepContext<'_>, game: &Game, step: &Step) -> StepVerdict {
        let (lo, agreed, claimed) = game.item_range();
        if step.index != lo {
            return StepVerdict::Rejected(format!("step of item {}, the game is at {lo}", step.index));
        }
        verify_step(ctx.params, ctx.items_root, step, &agreed, &claimed, ctx.block_hash)
    }
}

/// Level 2: one item's trace `T_0 … T_L` (`prover::machine`); a step
/// re-executes one instruction (or the prologue, the epilogue, one
/// journal entry's commit).
pub struct Instructions;

impl StepMachine for Instructions {
    const LEVEL: u8 = 2;
    type Step = MachineStep;

    fn verify(ctx: &StepContext<'_>, game: &Game, step: &MachineStep) -> StepVerdict {
        use crate::machine::{InstructionVerdict, StepEnv, verify_item_step};
        let Some(d) = &game.descent else {
            return StepVerdict::Rejected("the game has not descended into its item".into());
        };
        if game.phase != Phase::Step || step.index != game.lo {
            return StepVerdict::Rejected(format!("step {} of the item, the game is not at it", step.index));
        }
        if step.pre.hash() != d.lo_commit {
            return StepVerdict::Rejected("not the trace before the item agreed".into());
        }
        if step.item.item_hash() != d.item {
            return StepVerdict::Rejected("not the item pinned".into());
        }
        let mut env = StepEnv::new(ctx.params.clone(), &step.item, step.pre);
        // a BLOCKHASH step's block, by the referee's own header chain
        if let crate::machine::ItemStep::Instruction(s) = &step.step
            && let Some((n, _)) = s.block_hash
        {
            match (ctx.block_hash)(n) {
                Some(h) => {
                    env.block_hashes.insert(n, h);
                }
                None => return StepVerdict::Rejected(format!("block {n} is not below the header")),
            }
        }
        match verify_item_step(&step.step, &game.lo_commit, &env) {
            InstructionVerdict::Next(next) if next == game.hi_commit => StepVerdict::Upheld,
            InstructionVerdict::Next(_) => StepVerdict::Refuted { computed: None },
            InstructionVerdict::Unsupported(op) => {
                StepVerdict::Rejected(format!("instruction {op:#04x} is not a level-2 step yet"))
            }
            InstructionVerdict::Rejected(why) => StepVerdict::Rejected(why),
        }
    }
}

/// Decodes a step move's bytes and re-executes it at its level.
pub fn verify_any(ctx: &StepContext<'_>, game: &Game, bytes: &[u8]) -> Verified {
    let step = match AnyStep::decode(bytes) {
        Ok(s) => s,
        Err(e) => {
            return Verified {
                verdict: StepVerdict::Rejected(e.to_string()),
                level: game.level(),
                index: game.lo,
                witness_bytes: 0,
                instruction: None,
            };
        }
    };
    let index = step.index();
    match &step {
        AnyStep::Item(s) => Verified {
            verdict: Items::verify(ctx, game, s),
            level: Items::LEVEL,
            index,
            witness_bytes: s.witness.encoded_len(),
            instruction: None,
        },
        AnyStep::Undecodable(u) => {
            let (lo, ..) = game.item_range();
            let verdict = if u.index == lo {
                u.verify(ctx.items_root)
            } else {
                StepVerdict::Rejected(format!("step of item {}, the game is at {lo}", u.index))
            };
            Verified { verdict, level: Items::LEVEL, index, witness_bytes: 0, instruction: None }
        }
        AnyStep::Machine(m) => {
            let instruction = match &m.step {
                crate::machine::ItemStep::Instruction(s) => Some((
                    s.state.pc,
                    s.state.opcode,
                    s.state.depth,
                    crate::machine::step_name(&s.state, &s.top),
                )),
                _ => None,
            };
            Verified {
                verdict: Instructions::verify(ctx, game, m),
                level: Instructions::LEVEL,
                index,
                witness_bytes: 0,
                instruction,
            }
        }
    }
}

/// Block parameters of `header` as every node derives them (the referee
/// re-executes a step under exactly these).
pub fn block_params(spec: &bridge::ChainSpec, header: &bridge::ShardHeader) -> BlockParams {
    BlockParams {
        shard: header.shard,
        shards: spec.shards,
        chain_id: spec.chain_id(header.shard),
        number: header.height,
        timestamp: header.timestamp,
        beneficiary: alloy_primitives::Address::from(header.proposer.0),
        gas_limit: header.gas_limit,
        base_fee: header.base_fee,
        prevrandao: alloy_primitives::B256::from(header.parent_hash.0),
        fork: crate::SPEC,
    }
}

mod codec {
    //! The canonical encoding of a [`Step`] (what a `Step` move carries).
    //! Decoding is bounded by the input (itself bounded by
    //! [`bridge::MAX_STEP_BYTES`]) and checks every tag.

    use alloy_primitives::{Address, B256, Bytes, U256};
    use bridge::{Decode, DecodeError, Encode, TraceCommitment, TraceState, decode_list};

    use super::Step;
    use crate::exec::Item;
    use crate::state::{SmtProof, StateKey, StateProof};
    use crate::witness::Witness;

    fn key_from_bytes(b: &[u8]) -> Result<StateKey, DecodeError> {
        let bad = DecodeError::Invalid("state key");
        match (b.first(), b.len()) {
            (Some(1), 21) => Ok(StateKey::Account(Address::from_slice(&b[1..]))),
            (Some(2), 53) => Ok(StateKey::Storage(
                Address::from_slice(&b[1..21]),
                U256::from_be_bytes::<32>(b[21..].try_into().map_err(|_| bad.clone())?),
            )),
            (Some(3), 33) => Ok(StateKey::Code(B256::from_slice(&b[1..]))),
            _ => Err(bad),
        }
    }

    impl Step {
        /// The canonical encoding.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.index.encode_to(&mut out);
            self.item.encode_to(&mut out);
            self.proof.encode_to(&mut out);
            let w = &self.witness;
            w.pre.encode_to(&mut out);
            w.trace.encode_to(&mut out);
            (w.proofs.len() as u32).encode_to(&mut out);
            for p in &w.proofs {
                p.key.to_bytes().encode_to(&mut out);
                p.value.clone().encode_to(&mut out);
                borsh::to_vec(&p.proof).expect("in-memory encoding").encode_to(&mut out);
            }
            let codes: Vec<Vec<u8>> = w.codes.iter().map(|c| c.to_vec()).collect();
            bridge::encode_list(&codes, &mut out);
            (w.block_hashes.len() as u32).encode_to(&mut out);
            for (n, h) in &w.block_hashes {
                n.encode_to(&mut out);
                h.0.encode_to(&mut out);
            }
            out
        }

        /// Decodes a step; an undecodable transaction is an error (the
        /// step proves nothing).
        pub fn decode(mut input: &[u8]) -> Result<Step, DecodeError> {
            let input = &mut input;
            let index = u64::decode(input)?;
            let item = Item::decode(input)?;
            let proof = bridge::MerkleProof::decode(input)?;
            let pre = TraceCommitment::decode(input)?;
            let trace = TraceState::decode(input)?;
            let n = u32::decode(input)? as usize;
            let mut proofs = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                let key = key_from_bytes(&Vec::<u8>::decode(input)?)?;
                let value = Option::<Vec<u8>>::decode(input)?;
                let raw = Vec::<u8>::decode(input)?;
                let proof: SmtProof =
                    borsh::from_slice(&raw).map_err(|_| DecodeError::Invalid("state proof"))?;
                proofs.push(StateProof { key, value, proof });
            }
            let codes: Vec<Vec<u8>> = decode_list(input)?;
            let n = u32::decode(input)? as usize;
            let mut block_hashes = Vec::with_capacity(n.min(256));
            for _ in 0..n {
                block_hashes.push((u64::decode(input)?, B256::from(<[u8; 32]>::decode(input)?)));
            }
            if !input.is_empty() {
                return Err(DecodeError::TrailingBytes(input.len()));
            }
            let witness = Witness {
                pre,
                trace,
                proofs,
                codes: codes.into_iter().map(Bytes::from).collect(),
                block_hashes,
            };
            Ok(Step { index, item, proof, witness })
        }
    }
}
